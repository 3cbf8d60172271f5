using Nin.Model.Checkpoints;

namespace Nin.Api.Security;

/// <summary>
/// Who may make the server load, serve or hand out a stored version. Anonymous callers get the active version; with
/// API keys in force, naming any other version (<c>/predict?model=&amp;version=</c>, KServe infer or ready on a non-active
/// model, a version's export or test samples) needs a key with the <c>predict</c> scope. Without keys everyone is
/// anonymous, and loads of non-active versions are bounded instead (<c>Serving:VersionLoadsPerMinute</c>, in the model
/// registry; exports and samples by their rate limit and artefact cache).
/// </summary>
public sealed class VersionAccess(ApiKeyRing keys, ModelStore store)
{
    /// <summary>True when the request carries a valid key with the <c>predict</c> scope (its loads are not counted).</summary>
    public static bool IsKeyed(HttpContext context) => ApiKeyMiddleware.HasScope(context, ApiScope.Predict);

    /// <summary>False when keys are in force, the caller has no <c>predict</c> key, and <paramref name="name"/>/<paramref name="version"/> is not the active version.</summary>
    public bool MayServe(HttpContext context, string? name, int? version)
    {
        if (!keys.Any || name is null || IsKeyed(context))
        {
            return true;
        }

        return store.Active is { } active && active.Name == name && (version is null || version == active.Version);
    }

    public const string DeniedTitle = "An API key is required for this version.";

    public const string DeniedDetail = "Without a key, only the active version is served; send a key with the 'predict' scope (X-Api-Key or Authorization: Bearer) to choose another.";
}
