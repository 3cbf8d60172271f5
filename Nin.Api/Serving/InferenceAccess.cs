using Microsoft.Extensions.Options;
using Nin.Api.Security;

namespace Nin.Api.Serving;

/// <summary>
/// Who may use the inference routes, the same for every protocol: a key that is sent must be valid (403 otherwise, as on
/// <c>/train</c>, even where none is needed); without a key only the active version is served when keys are configured
/// (401 for another); with <see cref="SecurityOptions.ProtectPredict"/> inference needs a key. gRPC metadata
/// (<c>x-api-key</c>, <c>authorization: Bearer</c>) are HTTP/2 headers and are read the same way.
/// </summary>
public sealed class InferenceAccess(IOptions<SecurityOptions> options, ApiKeyRing keys, VersionAccess versions)
{
    private readonly bool protectInference = options.Value.ProtectPredict;

    /// <summary>
    /// Throws the refusal, if any, for a request naming <paramref name="model"/>/<paramref name="version"/> (null: the
    /// active one); for an inference call (<paramref name="inference"/>, not metadata) <see cref="SecurityOptions.ProtectPredict"/> applies.
    /// </summary>
    public void Check(HttpContext context, string? model, int? version, bool inference)
    {
        // Every key source counts (settings, scoped keys, the reloaded keys file): the ring is what the middleware checks too.
        if (!keys.Any || VersionAccess.IsKeyed(context))
        {
            return;
        }

        var needsKey = (inference && protectInference) || !versions.MayServe(context, model, version);
        if (ApiKeyMiddleware.KeyOf(context) is not null)
        {
            if (!needsKey)
            {
                return; // a valid key of another scope: what anyone may do, it may do
            }

            throw new InferenceException(InferenceErrorKind.Forbidden, "The API key lacks the 'predict' scope.",
                "This needs a key with the 'predict' scope (or 'admin'); the key sent has other scopes.");
        }

        if (ApiKeyMiddleware.PresentedKey(context.Request) is not null)
        {
            throw new InferenceException(InferenceErrorKind.Forbidden, "The API key is not valid.", "The key sent is not one of the service's keys.");
        }

        if (needsKey)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            throw new InferenceException(InferenceErrorKind.Unauthorized,
                inference && protectInference ? "An API key is required." : VersionAccess.DeniedTitle,
                inference && protectInference ? $"Send it as the {ApiKeyMiddleware.HeaderName} header or as 'Authorization: Bearer <key>'." : VersionAccess.DeniedDetail);
        }
    }
}
