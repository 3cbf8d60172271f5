using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Kestrel keeps one endpoint-defaults action: each <c>ConfigureEndpointDefaults</c> call replaces the one before. The
/// service has several (connection counting, rejected requests' ProblemDetails, the gRPC port's HTTP/2), so they are
/// added here and all run, in the order added, for every endpoint.
/// </summary>
public static class EndpointDefaults
{
    private static readonly ConditionalWeakTable<KestrelServerOptions, List<Action<ListenOptions>>> Actions = [];

    /// <summary>Runs <paramref name="action"/> for every endpoint, after the actions added before it.</summary>
    public static void AddEndpointDefault(this KestrelServerOptions options, Action<ListenOptions> action)
    {
        var actions = Actions.GetOrCreateValue(options);
        actions.Add(action);
        if (actions.Count == 1)
        {
            options.ConfigureEndpointDefaults(listen =>
            {
                foreach (var each in actions)
                {
                    each(listen);
                }
            });
        }
    }
}
