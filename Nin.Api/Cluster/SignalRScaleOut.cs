using System.Text.Json.Serialization;
using Nin.Api.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Nin.Api.Cluster;

/// <summary>The hub's scale-out, bound from the <c>SignalR</c> section.</summary>
public sealed class SignalRScaleOutOptions
{
    public const string SectionName = "SignalR";

    /// <summary>
    /// A StackExchange.Redis configuration string (<c>host:port[,password=…]</c>). When set, hub messages go through Redis,
    /// so events a worker sends reach clients connected to any API replica. Empty: in this process only.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>Prefix of the Redis channels, so deployments sharing one Redis stay apart.</summary>
    public string ChannelPrefix { get; set; } = "nin";
}

public static class SignalRScaleOut
{
    /// <summary>The hub (JSON with enum names), on the Redis backplane when <c>SignalR:Redis</c> is set.</summary>
    public static IHostApplicationBuilder AddNinSignalR(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SignalRScaleOutOptions>().BindConfiguration(SignalRScaleOutOptions.SectionName)
            .Validate(o => !string.IsNullOrWhiteSpace(o.ChannelPrefix), "SignalR:ChannelPrefix cannot be empty (it keeps deployments sharing one Redis apart).")
            .ValidateOnStart();
        var options = builder.Configuration.GetSection(SignalRScaleOutOptions.SectionName).Get<SignalRScaleOutOptions>() ?? new SignalRScaleOutOptions();
        var signalR = builder.Services.AddSignalR()
            .AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new JsonStringEnumConverter()));
        if (!string.IsNullOrWhiteSpace(options.Redis))
        {
            var backplane = new RedisBackplane();
            builder.Services.AddSingleton(backplane);
            builder.Services.AddHealthChecks().AddCheck<RedisBackplaneHealthCheck>("signalRBackplane");
            builder.Services.AddHostedService<RedisBackplaneConnector>();
            signalR.AddStackExchangeRedis(options.Redis, o =>
            {
                o.Configuration.ChannelPrefix = RedisChannel.Literal(options.ChannelPrefix);
                o.Configuration.AbortOnConnectFail = false; // keep retrying while Redis starts or restarts
                o.Configuration.ClientName = $"nin-{NinRole.Of(builder).Name}-{Environment.MachineName}";
                o.ConnectionFactory = async writer => backplane.Connection = await ConnectionMultiplexer.ConnectAsync(o.Configuration, writer);
            });

            // The hub's manager for this hub, wrapped so a Redis already gone at shutdown does not abort the process.
            builder.Services.AddSingleton<Microsoft.AspNetCore.SignalR.HubLifetimeManager<Training.TrainingHub>>(sp =>
                new ResilientHubLifetimeManager<Training.TrainingHub>(
                    ActivatorUtilities.CreateInstance<Microsoft.AspNetCore.SignalR.StackExchangeRedis.RedisHubLifetimeManager<Training.TrainingHub>>(sp),
                    sp.GetRequiredService<ILogger<ResilientHubLifetimeManager<Training.TrainingHub>>>()));
        }

        return builder;
    }
}

/// <summary>The backplane's Redis connection, as SignalR opened it, for readiness.</summary>
public sealed class RedisBackplane
{
    public IConnectionMultiplexer? Connection { get; set; }
}

/// <summary>
/// Degraded (still 200: predictions and the API work) while the Redis backplane is disconnected: events sent by other
/// processes (a worker's epochs) do not reach this replica's hub clients until it reconnects.
/// </summary>
internal sealed class RedisBackplaneHealthCheck(RedisBackplane backplane) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(
        HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(backplane.Connection is { IsConnected: true }
            ? HealthCheckResult.Healthy("Redis backplane connected")
            : HealthCheckResult.Degraded(
                "The SignalR Redis backplane is not connected: live training events from other processes do not reach this replica's clients until it reconnects."));
}

/// <summary>Creates the hub's Redis lifetime manager at start, so the backplane connects before the first client or event.</summary>
internal sealed class RedisBackplaneConnector(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<Microsoft.AspNetCore.SignalR.HubLifetimeManager<Training.TrainingHub>>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
