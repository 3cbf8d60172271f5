using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

/// <summary>
/// Refuses (403) what a page of another site can make a browser send: requests that change state (POST, PUT, PATCH,
/// DELETE) and WebSocket upgrades whose <c>Sec-Fetch-Site</c> says <c>cross-site</c> or <c>same-site</c>, or whose
/// <c>Origin</c> is not this service's own (nor in <see cref="SecurityOptions.AllowedOrigins"/>). "Simple" requests
/// (a <c>text/plain</c> POST, a multipart form) need no CORS preflight, so without this an open instance could be
/// driven from any page its user opens. Clients that are not browsers (curl, SDKs) send neither header and pass;
/// the dashboard is same-origin and passes.
/// </summary>
public sealed class CrossSiteRequestGuard(RequestDelegate next, IOptions<SecurityOptions> options, IProblemDetailsService problems)
{
    private readonly HashSet<string> allowed = options.Value.AllowedOrigins
        .Where(o => !string.IsNullOrWhiteSpace(o))
        .Select(o => o.Trim().TrimEnd('/'))
        .ToHashSet(StringComparer.OrdinalIgnoreCase);

    public async Task InvokeAsync(HttpContext context)
    {
        var reason = ChangesState(context) ? Refusal(context.Request) : null;
        if (reason is null)
        {
            await next(context);
            return;
        }

        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "Cross-site request refused.",
                Detail = reason,
            },
        });
    }

    private static bool ChangesState(HttpContext context)
    {
        var method = context.Request.Method;
        return HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method)
            || HttpMethods.IsConnect(method) // HTTP/2 WebSockets
            || context.WebSockets.IsWebSocketRequest
            || context.Request.Headers.Upgrade.ToString().Contains("websocket", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Why the request is refused, or null when it is same-origin, allowed, or not from a browser.</summary>
    internal string? Refusal(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        if (origin.Length > 0 && allowed.Contains(origin.TrimEnd('/')))
        {
            return null;
        }

        var site = request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Equals("cross-site", StringComparison.OrdinalIgnoreCase) || site.Equals("same-site", StringComparison.OrdinalIgnoreCase))
        {
            return $"The browser says this request comes from another site ({site}); requests that change state are accepted from this service's own pages only.";
        }

        if (origin.Length > 0 && !SameOrigin(origin, request))
        {
            return "The request's Origin is another site; requests that change state are accepted from this service's own pages only (or origins in Security:AllowedOrigins).";
        }

        return null;
    }

    /// <summary>The Origin names the host (and port) the request was sent to. The scheme is not compared: a TLS proxy may end it.</summary>
    private static bool SameOrigin(string origin, HttpRequest request)
    {
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            return false; // "null" (sandboxed frames, file:) and anything unparsable
        }

        var host = request.Host;
        if (!host.HasValue || !string.Equals(uri.IdnHost, host.Host, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var requestPort = host.Port ?? (request.IsHttps ? 443 : 80);
        return uri.Port == requestPort || (host.Port is null && uri.IsDefaultPort);
    }
}
