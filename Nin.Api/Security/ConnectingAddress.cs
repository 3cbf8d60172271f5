using System.Net;
using Hangfire.Dashboard;

namespace Nin.Api.Security;

/// <summary>
/// The address the TCP connection came from, kept before forwarded headers rewrite <c>RemoteIpAddress</c> to the
/// client a trusted proxy names: what "local" means must not depend on a header.
/// </summary>
public sealed record ConnectingAddress(IPAddress? Address)
{
    /// <summary>The connecting address of <paramref name="context"/> (the remote address when nothing kept it).</summary>
    public static IPAddress? Of(HttpContext context) => context.Features.Get<ConnectingAddress>()?.Address ?? context.Connection.RemoteIpAddress;

    /// <summary>
    /// A request from this machine itself: it connected from a loopback address and no proxy forwarded it (a proxy on
    /// this machine relays requests from anywhere).
    /// </summary>
    public static bool IsLocal(HttpContext context) =>
        Of(context) is { } address && IPAddress.IsLoopback(address) && !context.Request.Headers.ContainsKey("X-Forwarded-For")
        && !context.Request.Headers.ContainsKey("Forwarded") && context.Request.Headers["X-Original-For"].Count == 0;

    /// <summary>Remembers the connecting address; runs before the forwarded-headers middleware.</summary>
    public static IApplicationBuilder UseConnectingAddress(IApplicationBuilder app) =>
        app.Use((context, next) =>
        {
            context.Features.Set(new ConnectingAddress(context.Connection.RemoteIpAddress));
            return next(context);
        });

    /// <summary>Hangfire's dashboard for local requests only, judged by <see cref="IsLocal"/>.</summary>
    public sealed class LocalDashboardFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => IsLocal(context.GetHttpContext());
    }
}
