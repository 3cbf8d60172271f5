using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Keeps a flood of connections from using up the process's file descriptors. Each open connection holds one; once
/// none is left, nothing else can open a file, a pipe or a socket either, and the runtime ends the process ("Out of
/// memory."): an open-loop flood at 4x a GPU replica's capacity did that within seconds (20,000 descriptors), and
/// 800 idle connections did it to a replica allowed 400. The .NET runtime already raises the soft
/// <c>RLIMIT_NOFILE</c> to the hard one when it starts; here Kestrel's <c>MaxConcurrentConnections</c>, unless
/// configured (<c>Kestrel:Limits:MaxConcurrentConnections</c>), is set below that limit with room left for what the
/// service opens itself (about 350 descriptors idle: assemblies, pipes; more while training or with PostgreSQL). A
/// connection beyond it is closed at once and the service keeps serving the others. Linux only; elsewhere Kestrel's
/// own default (no limit) stays.
/// </summary>
public static partial class ConnectionLimits
{
    private const int RlimitNofile = 7; // Linux, every architecture .NET runs on

    public static IHostApplicationBuilder AddNinConnectionLimits(this IHostApplicationBuilder builder)
    {
        var descriptors = DescriptorLimit();
        var limits = builder.Configuration.GetSection("Kestrel:Limits");
        builder.Services.Configure<KestrelServerOptions>(o =>
        {
            limits.Bind(o.Limits); // Kestrel:Limits:* from any configuration source, as Kestrel's documentation shows them
            o.Limits.MaxConcurrentConnections ??= DefaultMaxConnections(descriptors);
            o.AddEndpointDefault(listen => listen.Use(next => listen.ApplicationServices.GetRequiredService<ConnectionPressure>().Count(next)));
        });
        builder.Services.AddSingleton<ConnectionPressure>();
        builder.Services.AddHostedService(sp => new ConnectionLimitsReport(descriptors, sp.GetRequiredService<IOptions<KestrelServerOptions>>(), sp.GetRequiredService<ILogger<ConnectionLimitsReport>>()));
        return builder;
    }

    /// <summary>
    /// Connections allowed with <paramref name="descriptors"/> file descriptors: all but a reserve for the service's own
    /// files (a tenth of the limit, at least 1,024 and at most 16,384), and never less than a quarter of the limit.
    /// Null (no limit) where the limit is unknown.
    /// </summary>
    internal static long? DefaultMaxConnections(long? descriptors)
    {
        if (descriptors is not { } soft || soft <= 0)
        {
            return null;
        }

        var reserve = Math.Clamp(soft / 10, 1024, 16_384);
        return Math.Max(soft / 4, soft - reserve);
    }

    /// <summary>The process's soft <c>RLIMIT_NOFILE</c>; null elsewhere than Linux or when it cannot be read.</summary>
    internal static long? DescriptorLimit()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            var limit = default(RLimit);
            return getrlimit(RlimitNofile, ref limit) == 0 ? (long)Math.Min(limit.Current, long.MaxValue) : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private record struct RLimit(ulong Current, ulong Maximum);

    [DllImport("libc")]
    private static extern int getrlimit(int resource, ref RLimit limit);

    /// <summary>Says once, at start-up, what the limits are.</summary>
    private sealed partial class ConnectionLimitsReport(long? descriptors, IOptions<KestrelServerOptions> kestrel, ILogger<ConnectionLimitsReport> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            var connections = kestrel.Value.Limits.MaxConcurrentConnections;
            LogLimits(logger, descriptors is { } d ? d.ToString("N0", CultureInfo.InvariantCulture) : "unknown",
                connections is { } c ? c.ToString("N0", CultureInfo.InvariantCulture) : "no limit");
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        [LoggerMessage(Level = LogLevel.Information, Message = "File descriptors: {Descriptors}; concurrent connections: at most {Connections}")]
        private static partial void LogLimits(ILogger logger, string descriptors, string connections);
    }
}
