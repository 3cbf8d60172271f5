using Microsoft.Extensions.Options;
using Nin.Model.Checkpoints;

namespace Nin.Api.Security;

/// <summary>
/// Who may make the server load a stored version. Anonymous callers serve from the active version; with API keys
/// configured, naming any other version (<c>/predict?model=&amp;version=</c>, KServe infer or ready on a non-active
/// model) needs a key. Without keys everyone is anonymous, and loads of non-active versions are bounded instead
/// (<c>Serving:VersionLoadsPerMinute</c>, in the model registry).
/// </summary>
public sealed class VersionAccess(IOptions<SecurityOptions> options, ModelStore store)
{
    private readonly bool keysConfigured = options.Value.EffectiveKeys.Count > 0;

    /// <summary>True when the request carries a valid key (its loads are not counted).</summary>
    public static bool IsKeyed(HttpContext context) => ApiKeyMiddleware.HasValidKey(context);

    /// <summary>False when keys are configured, the caller has none, and <paramref name="name"/>/<paramref name="version"/> is not the active version.</summary>
    public bool MayServe(HttpContext context, string? name, int? version)
    {
        if (!keysConfigured || name is null || IsKeyed(context))
        {
            return true;
        }

        return store.Active is { } active && active.Name == name && (version is null || version == active.Version);
    }

    public const string DeniedTitle = "An API key is required for this version.";

    public const string DeniedDetail = "Without a key, only the active version is served; send the key (X-Api-Key or Authorization: Bearer) to choose another.";
}
