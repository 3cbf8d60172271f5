using System.Text.Json.Serialization;
using Nin.Api.Infrastructure;
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
        var options = builder.Configuration.GetSection(SignalRScaleOutOptions.SectionName).Get<SignalRScaleOutOptions>() ?? new SignalRScaleOutOptions();
        var signalR = builder.Services.AddSignalR()
            .AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new JsonStringEnumConverter()));
        if (!string.IsNullOrWhiteSpace(options.Redis))
        {
            signalR.AddStackExchangeRedis(options.Redis, o =>
            {
                o.Configuration.ChannelPrefix = RedisChannel.Literal(options.ChannelPrefix);
                o.Configuration.AbortOnConnectFail = false; // keep retrying while Redis starts or restarts
                o.Configuration.ClientName = $"nin-{NinRole.From(builder.Configuration).Name}-{Environment.MachineName}";
            });
        }

        return builder;
    }
}
