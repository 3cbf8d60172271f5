using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Nin.Api.Security;

/// <summary>
/// Against DNS rebinding: while the service listens on loopback only and <c>AllowedHosts</c> is left at <c>*</c>,
/// requests must name a loopback host (<c>localhost</c>, <c>*.localhost</c>, 127.0.0.0/8, <c>[::1]</c>); a page of
/// <c>attacker.example</c> whose name was re-pointed at 127.0.0.1 is answered 400. An explicit <c>AllowedHosts</c>
/// list is enforced by ASP.NET Core's host filtering instead; on other bindings nothing changes.
/// </summary>
public sealed class LoopbackHostGuard(RequestDelegate next, IServer server, IConfiguration configuration, IProblemDetailsService problems)
{
    private int state; // 0 unknown, 1 loopback only, 2 not enforced

    public async Task InvokeAsync(HttpContext context)
    {
        if (state == 0)
        {
            state = Enforced() ? 1 : 2; // the addresses are known once the server runs, which it does by the first request
        }

        if (state == 2 || IsLoopbackHost(context.Request.Host.Host))
        {
            await next(context);
            return;
        }

        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "Host not allowed.",
                Detail = "The service listens on loopback only and answers requests for localhost, 127.0.0.1 or [::1]; set AllowedHosts to serve other names.",
            },
        });
    }

    private bool Enforced()
    {
        var hosts = configuration["AllowedHosts"];
        if (!string.IsNullOrWhiteSpace(hosts) && hosts.Trim() != "*")
        {
            return false;
        }

        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses;
        return addresses is { Count: > 0 } && SecurityExtensions.AllLoopback(addresses);
    }

    public static bool IsLoopbackHost(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip);
    }
}
