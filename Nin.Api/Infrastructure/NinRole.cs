namespace Nin.Api.Infrastructure;

/// <summary>
/// What one process runs (<c>Nin:Role</c>): <c>all</c>, the default, is the single process of the embedded setup; <c>api</c>
/// serves HTTP, the hub and predictions and queues jobs without running them; <c>worker</c> runs the Hangfire server that
/// trains (the <c>training</c> queue) and answers only health and metrics over HTTP. <c>api</c> and <c>worker</c> share
/// jobs through PostgreSQL (<c>Hangfire:PostgresConnection</c>), so they need it.
/// </summary>
public sealed record NinRole(string Name)
{
    public const string Key = "Nin:Role";

    public static readonly NinRole All = new("all");
    public static readonly NinRole Api = new("api");
    public static readonly NinRole Worker = new("worker");

    public static IReadOnlyList<NinRole> Known { get; } = [All, Api, Worker];

    /// <summary>HTTP areas, the hub, the dashboard and serving.</summary>
    public bool ServesApi => this != Worker;

    /// <summary>The Hangfire server with the <c>training</c> queue.</summary>
    public bool RunsJobs => this != Api;

    public string Describe() => Name switch
    {
        "api" => "HTTP API, dashboard, SignalR hub and serving; training jobs are queued for workers (no Hangfire server here)",
        "worker" => "the Hangfire server on the training queue; HTTP: /health/live, /health/ready and /metrics only",
        _ => "everything in one process: HTTP API, dashboard, SignalR hub, serving and the Hangfire server",
    };

    /// <summary>
    /// The role this host runs, parsed once from configuration and kept in the builder's properties: every
    /// <c>AddNin...</c> step that depends on it asks here.
    /// </summary>
    public static NinRole Of(IHostApplicationBuilder builder)
    {
        if (!builder.Properties.TryGetValue(typeof(NinRole), out var role))
        {
            builder.Properties[typeof(NinRole)] = role = From(builder.Configuration);
        }

        return (NinRole)role;
    }

    /// <summary>The role configured, or an error naming the valid ones.</summary>
    public static NinRole From(IConfiguration configuration)
    {
        var value = configuration[Key]?.Trim();
        if (string.IsNullOrEmpty(value))
        {
            return All;
        }

        return Known.FirstOrDefault(r => string.Equals(r.Name, value, StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException($"{Key} is '{value}'; it must be one of: {string.Join(", ", Known.Select(r => r.Name))}.");
    }
}
