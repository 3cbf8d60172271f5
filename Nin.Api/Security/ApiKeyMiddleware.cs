using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

/// <summary>
/// Requires an API key on the routes that change state: <c>/train</c> (all verbs), <c>POST/DELETE /datasets</c>,
/// <c>POST/DELETE /models</c>, <c>/hangfire</c> (Hangfire's dashboard can requeue and delete jobs), <c>/hubs/*</c> (the key may come as the <c>access_token</c> query parameter there,
/// as SignalR's JavaScript client sends it) and, with <see cref="SecurityOptions.ProtectPredict"/>, inference.
/// 401 without a key, 403 with a wrong one, both as ProblemDetails. With no key configured everything is open.
/// </summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, IOptions<SecurityOptions> options, IProblemDetailsService problems)
{
    public const string HeaderName = "X-Api-Key";
    private const string ClientItem = "nin.client";
    private readonly byte[][] keyHashes = options.Value.EffectiveKeys.Select(Hash).ToArray();
    private readonly bool protectPredict = options.Value.ProtectPredict;

    public async Task InvokeAsync(HttpContext context)
    {
        var presented = PresentedKey(context.Request);
        var index = presented is null ? -1 : Match(presented);
        if (index >= 0)
        {
            context.Items[ClientItem] = $"key:{index}";
        }

        if (keyHashes.Length == 0 || !RequiresKey(context.Request, protectPredict) || index >= 0)
        {
            await next(context);
            return;
        }

        var missing = presented is null;
        context.Response.StatusCode = missing ? StatusCodes.Status401Unauthorized : StatusCodes.Status403Forbidden;
        if (missing)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = context.Response.StatusCode,
                Title = missing ? "An API key is required." : "The API key is not valid.",
                Detail = missing
                    ? $"Send it as the {HeaderName} header or as 'Authorization: Bearer <key>'."
                    : "The key sent is not one of the service's keys.",
            },
        });
    }

    /// <summary>True when the request presented one of the configured keys.</summary>
    public static bool HasValidKey(HttpContext context) =>
        context.Items.TryGetValue(ClientItem, out var client) && client is string s && s.StartsWith("key:", StringComparison.Ordinal);

    /// <summary>The partition of a request for rate limiting: its API key's index when valid, else the client IP.</summary>
    public static string ClientOf(HttpContext context) =>
        context.Items.TryGetValue(ClientItem, out var client) && client is string s
            ? s
            : "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    public static bool RequiresKey(HttpRequest request, bool protectPredict)
    {
        var path = request.Path;
        var method = request.Method;
        var changes = HttpMethods.IsPost(method) || HttpMethods.IsDelete(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method);
        if (path.StartsWithSegments("/train") || path.StartsWithSegments("/hubs") || path.StartsWithSegments("/hangfire"))
        {
            return true;
        }

        if (path.StartsWithSegments("/datasets") || path.StartsWithSegments("/models"))
        {
            return changes;
        }

        if (protectPredict && (path.StartsWithSegments("/predict") || (path.StartsWithSegments("/v2/models") && changes)))
        {
            return true;
        }

        return false;
    }

    internal static string? PresentedKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue(HeaderName, out var header) && !string.IsNullOrEmpty(header.ToString()))
        {
            return header.ToString().Trim();
        }

        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        if (request.Path.StartsWithSegments("/hubs") && request.Query.TryGetValue("access_token", out var token) && !string.IsNullOrEmpty(token.ToString()))
        {
            return token.ToString();
        }

        return null;
    }

    /// <summary>Compares against every key in constant time (SHA-256 digests, so lengths do not leak either).</summary>
    private int Match(string presented)
    {
        var hash = Hash(presented);
        var found = -1;
        for (var i = 0; i < keyHashes.Length; i++)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, keyHashes[i]) && found < 0)
            {
                found = i;
            }
        }

        return found;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
