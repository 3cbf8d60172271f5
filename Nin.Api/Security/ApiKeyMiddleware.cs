using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

/// <summary>
/// Enforces <see cref="ApiScopes.Required"/> on every request while any key is in force (<see cref="ApiKeyRing"/>): 401
/// without a key, 403 with one that is not valid or lacks the scope, each as ProblemDetails. The key may be sent as
/// <c>X-Api-Key</c>, <c>Authorization: Bearer</c>, or on <c>/hubs/*</c> as the <c>access_token</c> query parameter (as
/// SignalR's JavaScript client sends it). A valid key is remembered on the request (rate limits partition by it;
/// <see cref="VersionAccess"/> checks its scopes). With no key anywhere everything is open.
/// </summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, ApiKeyRing ring, IOptionsMonitor<SecurityOptions> options, IProblemDetailsService problems)
{
    public const string HeaderName = "X-Api-Key";
    private const string KeyItem = "nin.key";

    public async Task InvokeAsync(HttpContext context)
    {
        var presented = PresentedKey(context.Request);
        var key = presented is null ? null : ring.Match(presented);
        if (key is not null)
        {
            context.Items[KeyItem] = key;
        }

        var required = ApiScopes.Required(context.Request.Method, context.Request.Path);
        if (!ring.Any || !Enforced(required, options.CurrentValue.ProtectPredict) || key?.Allows(required!.Scope) == true)
        {
            await next(context);
            return;
        }

        var status = presented is null ? StatusCodes.Status401Unauthorized : StatusCodes.Status403Forbidden;
        context.Response.StatusCode = status;
        if (presented is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        var scope = ApiScopes.Name(required!.Scope);
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = status,
                Title = presented is null ? "An API key is required." : key is null ? "The API key is not valid." : "The API key lacks the scope this needs.",
                Detail = presented is null
                    ? $"Send a key with the '{scope}' scope as the {HeaderName} header or as 'Authorization: Bearer <key>'."
                    : key is null
                        ? "The key sent is not one of the service's keys."
                        : $"This needs the '{scope}' scope; key '{key.Name}' has {string.Join(", ", key.Scopes.Select(ApiScopes.Name))}.",
                Extensions = { ["requiredScope"] = scope },
            },
        });
    }

    /// <summary>The valid key the request presented, or null.</summary>
    public static ApiKeyEntry? KeyOf(HttpContext context) => context.Items.TryGetValue(KeyItem, out var key) ? key as ApiKeyEntry : null;

    /// <summary>True when the request presented a valid key with <paramref name="scope"/> (or <c>admin</c>).</summary>
    public static bool HasScope(HttpContext context, ApiScope scope) => KeyOf(context)?.Allows(scope) == true;

    /// <summary>True when the request presented one of the configured keys.</summary>
    public static bool HasValidKey(HttpContext context) => KeyOf(context) is not null;

    /// <summary>The partition of a request for rate limiting: its API key when valid, else its client network (<see cref="ClientNetwork"/>).</summary>
    public static string ClientOf(HttpContext context) =>
        KeyOf(context) is { } key ? "key:" + key.Id : "ip:" + ClientNetwork.Of(context.Connection.RemoteIpAddress);

    /// <summary>
    /// Whether a request needs a key by <see cref="ApiScopes.Required"/> (any scope; the version rule of exports and
    /// samples is the handlers'), for callers that ask yes or no, such as the OpenAPI document.
    /// </summary>
    public static bool RequiresKey(HttpRequest request, bool protectPredict) => Enforced(ApiScopes.Required(request.Method, request.Path), protectPredict);

    /// <summary>Whether this middleware checks <paramref name="required"/> itself (the version rule is the handlers').</summary>
    private static bool Enforced(RequiredScopeMetadata? required, bool protectPredict) =>
        required is { NonActiveVersions: false } && (!required.WhenPredictProtected || protectPredict);

    /// <summary>The key the request presents (header, bearer token, or on <c>/hubs/*</c> the access_token parameter), or null.</summary>
    public static string? PresentedKey(HttpRequest request)
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
}
