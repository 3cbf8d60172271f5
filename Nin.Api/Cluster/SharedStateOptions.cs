using System.Text.RegularExpressions;

namespace Nin.Api.Cluster;

/// <summary>
/// Nin's own tables in PostgreSQL (job records, the active model), used when <c>Hangfire:PostgresConnection</c> is set.
/// Bound from the <c>SharedState</c> section.
/// </summary>
public sealed partial class SharedStateOptions
{
    public const string SectionName = "SharedState";

    /// <summary>The schema of Nin's tables (Hangfire's own live in <c>Hangfire:PostgresSchema</c>).</summary>
    public string Schema { get; set; } = "nin";

    /// <summary>How often each process re-reads the active model and pending cancellations, besides LISTEN/NOTIFY (a safety net for missed notifications).</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The shortest interval between two writes of a running job's batch progress to its row.</summary>
    public TimeSpan ProgressWriteInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a process that runs jobs renews its row of capabilities (devices, free memory) in <c>{schema}.workers</c>.</summary>
    public TimeSpan WorkerHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A worker whose row was not renewed for this long is gone: POST /train no longer counts it.</summary>
    public TimeSpan WorkerTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public static bool IsValidSchema(string? schema) => schema is not null && SchemaPattern().IsMatch(schema);

    [GeneratedRegex(@"\A[a-z_][a-z0-9_]{0,47}\z")]
    private static partial Regex SchemaPattern();
}
