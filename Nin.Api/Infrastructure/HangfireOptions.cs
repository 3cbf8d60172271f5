using System.Data.Common;
using Npgsql;

namespace Nin.Api.Infrastructure;

/// <summary>Hangfire storage settings, bound from the <c>Hangfire</c> section.</summary>
public sealed class HangfireOptions
{
    public const string SectionName = "Hangfire";

    /// <summary>
    /// PostgreSQL connection string; when empty, jobs are kept in memory (Hangfire.InMemory) and job records in local files.
    /// When set, Hangfire's queue, Nin's job records and the active model live there, shared by every process.
    /// </summary>
    public string? PostgresConnection { get; set; }

    /// <summary>
    /// How long a job taken by a worker stays invisible to the others (sliding: a live worker keeps renewing it). A worker
    /// that dies (kill -9, a lost machine) stops renewing; after this long another worker takes the job and resumes it from
    /// its last epoch checkpoint. PostgreSQL only.
    /// </summary>
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The PostgreSQL schema Hangfire's tables live in.</summary>
    public string PostgresSchema { get; set; } = "hangfire";

    public bool UsesPostgres => !string.IsNullOrWhiteSpace(PostgresConnection);

    /// <summary>
    /// The connection string Nin opens: GSS encryption off unless the string (or <c>PGGSSENCMODE</c>) asks for
    /// it. Otherwise Npgsql 10 probes for libgssapi_krb5 on every physical connection and, where Kerberos is
    /// absent (the .NET aspnet image), logs an error each time (npgsql/npgsql#6360, #6416).
    /// </summary>
    public string? EffectivePostgresConnection => UsesPostgres ? DisableGssUnlessAsked(PostgresConnection!) : null;

    internal static string DisableGssUnlessAsked(string connectionString)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var asked = given.Keys.Cast<string>().Any(k => k.Replace(" ", "", StringComparison.Ordinal).Equals("GssEncryptionMode", StringComparison.OrdinalIgnoreCase))
            || Environment.GetEnvironmentVariable("PGGSSENCMODE") is { Length: > 0 };
        return asked
            ? connectionString
            : new NpgsqlConnectionStringBuilder(connectionString) { GssEncryptionMode = GssEncryptionMode.Disable }.ConnectionString;
    }

    /// <summary>Serve the Hangfire dashboard to remote clients too (it is local-only by default).</summary>
    public bool DashboardAllowRemote { get; set; }
}
