using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Nin.Api.Serving;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Answers a flood of connections with 503 before Kestrel's connection bound has to reset them. Kestrel closes a
/// connection beyond <c>MaxConcurrentConnections</c> without reading it, so its client sees a reset, not a refusal it
/// can act on. Here every accepted connection is counted; one accepted while more than
/// <see cref="ServingOptions.ShedConnectionsAbove"/> are open (by default seven eighths of the bound) is marked, and its
/// requests are answered at once with 503, <c>Retry-After</c> and <c>Connection: close</c>, which frees its descriptor
/// as soon as the answer is out. Connections opened before the pressure keep being served; health probes and
/// <c>/metrics</c> are always answered (a liveness probe failing under load would get the replica killed), and gRPC
/// calls are left to the data plane's own admission.
/// </summary>
public sealed partial class ConnectionPressure : IMiddleware
{
    private const string MarkKey = "nin.connection.shed";
    private readonly Lazy<long?> threshold;
    private readonly IProblemDetailsService problems;
    private readonly ILogger<ConnectionPressure> logger;
    private readonly Counter<long> shedCounter;
    private long open;

    public ConnectionPressure(IOptions<KestrelServerOptions> kestrel, IOptions<ServingOptions> serving, IProblemDetailsService problems, IMeterFactory meters, ILogger<ConnectionPressure> logger)
    {
        // Resolved on first use: Kestrel's options are complete only once the server starts.
        threshold = new(() => ResolveThreshold(serving.Value.ShedConnectionsAbove, kestrel.Value.Limits.MaxConcurrentConnections));
        this.problems = problems;
        this.logger = logger;
        var meter = meters.Create(ServingMetrics.MeterName);
        shedCounter = meter.CreateCounter<long>("nin.connections.shed", "{request}", "Requests refused because their connection arrived while too many were open (503 + Retry-After)");
        meter.CreateObservableGauge("nin.connections.open", () => Open, "{connection}", "Open HTTP connections (all endpoints)");
    }

    /// <summary>Connections open now.</summary>
    public long Open => Interlocked.Read(ref open);

    /// <summary>Open connections beyond which a new connection's requests are refused; null: never.</summary>
    public long? Threshold => threshold.Value;

    /// <summary>
    /// The configured threshold, or (unset) seven eighths of Kestrel's connection bound; null without a bound or when
    /// set to 0.
    /// </summary>
    internal static long? ResolveThreshold(long? configured, long? maxConnections) => configured switch
    {
        0 => null,
        > 0 => configured,
        _ => maxConnections is > 0 and var max ? max * 7 / 8 : null,
    };

    /// <summary>
    /// Kestrel's connection middleware: counts the connection while it is open and, when it came in under pressure,
    /// marks it with the number open at its arrival.
    /// </summary>
    public ConnectionDelegate Count(ConnectionDelegate next) => async connection =>
    {
        var now = Interlocked.Increment(ref open);
        if (now > Threshold)
        {
            connection.Items[MarkKey] = now;
        }

        try
        {
            await next(connection);
        }
        finally
        {
            Interlocked.Decrement(ref open);
        }
    };

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(MarkKey, out var mark) != true || mark is not long arrivedWith
            || Exempt(context.Request))
        {
            await next(context);
            return;
        }

        shedCounter.Add(1);
        LogShed(logger, arrivedWith, Threshold ?? 0);
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = "1";
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            context.Response.Headers.Connection = "close";
        }
        else
        {
            context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose(); // HTTP/2: GOAWAY once its streams end
        }

        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Too many open connections.",
                Detail = string.Create(CultureInfo.InvariantCulture,
                    $"This connection arrived while {arrivedWith:N0} were open (the service refuses new connections' requests above {Threshold:N0}, Serving:ShedConnectionsAbove). Retry on a new connection after Retry-After."),
            },
        });
    }

    private static bool Exempt(HttpRequest request) =>
        request.Path.StartsWithSegments("/health") || request.Path.StartsWithSegments("/metrics")
        || request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Refused a request on a connection that arrived under pressure ({Open} open then, threshold {Threshold})")]
    private static partial void LogShed(ILogger logger, long open, long threshold);
}
