using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Npgsql;
using NpgsqlTypes;

namespace Nin.Api.Cluster;

/// <summary>
/// Nin's tables in PostgreSQL and the one notification channel every process listens on. The schema is created or
/// migrated on first use, under an advisory lock so replicas starting together do not race; the first migration also
/// reads the records of a single-process deployment (<c>job.json</c> files, <c>active.json</c>) into the tables, so a
/// deployment moving to PostgreSQL keeps its jobs and its served model.
/// </summary>
public sealed partial class SharedStateDatabase : IAsyncDisposable
{
    private readonly NpgsqlDataSource dataSource;
    private readonly NinOptions folders;
    private readonly ILogger<SharedStateDatabase> logger;
    private readonly Lock gate = new();
    private volatile bool migrated;

    public SharedStateDatabase(IOptions<HangfireOptions> hangfire, IOptions<SharedStateOptions> options, IOptions<NinOptions> folders, ILogger<SharedStateDatabase> logger)
    {
        Options = options.Value;
        if (!SharedStateOptions.IsValidSchema(Options.Schema))
        {
            throw new InvalidOperationException($"SharedState:Schema '{Options.Schema}' is not valid: use 1–48 lower-case letters, digits or '_', not starting with a digit.");
        }

        var connection = hangfire.Value.EffectivePostgresConnection
            ?? throw new InvalidOperationException("Shared state needs Hangfire:PostgresConnection.");
        dataSource = new NpgsqlDataSourceBuilder(connection) { Name = "nin-shared-state" }.Build();
        this.folders = folders.Value;
        this.logger = logger;
    }

    public SharedStateOptions Options { get; }

    /// <summary>A table's name qualified with the schema, quoted.</summary>
    public string Table(string name) => $"\"{Options.Schema}\".\"{name}\"";

    /// <summary>The channel of <c>LISTEN</c>/<c>pg_notify</c>, one per schema so separate deployments on one server do not hear each other.</summary>
    public string Channel => Options.Schema + "_events";

    /// <summary>An open connection to a migrated schema.</summary>
    public NpgsqlConnection Open()
    {
        EnsureMigrated();
        return dataSource.OpenConnection();
    }

    public async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        EnsureMigrated();
        return await dataSource.OpenConnectionAsync(cancellationToken);
    }

    /// <summary>Sends a notification inside the caller's transaction (delivered when it commits).</summary>
    public void Notify(NpgsqlConnection connection, NpgsqlTransaction? transaction, string payload)
    {
        using var command = new NpgsqlCommand("SELECT pg_notify(@channel, @payload)", connection, transaction);
        command.Parameters.AddWithValue("channel", Channel);
        command.Parameters.AddWithValue("payload", payload);
        command.ExecuteNonQuery();
    }

    private void EnsureMigrated()
    {
        if (migrated)
        {
            return;
        }

        lock (gate)
        {
            if (migrated)
            {
                return;
            }

            Migrate();
            migrated = true;
        }
    }

    private void Migrate()
    {
        using var connection = dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        Execute(connection, transaction, "SELECT pg_advisory_xact_lock(hashtext('nin.migrate.' || @schema))", ("schema", Options.Schema));
        Execute(connection, transaction, $"CREATE SCHEMA IF NOT EXISTS \"{Options.Schema}\"");
        Execute(connection, transaction, $"CREATE TABLE IF NOT EXISTS {Table("schema_version")} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
        int current;
        using (var command = new NpgsqlCommand($"SELECT coalesce(max(version), 0) FROM {Table("schema_version")}", connection, transaction))
        {
            current = Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (var (version, step) in Migrations())
        {
            if (version <= current)
            {
                continue;
            }

            step(connection, transaction);
            Execute(connection, transaction, $"INSERT INTO {Table("schema_version")} (version) VALUES (@version)", ("version", version));
            LogMigrated(logger, Options.Schema, version);
        }

        transaction.Commit();
    }

    private IEnumerable<(int Version, Action<NpgsqlConnection, NpgsqlTransaction> Step)> Migrations()
    {
        yield return (1, (connection, transaction) =>
        {
            Execute(connection, transaction, $"""
                CREATE TABLE {Table("training_jobs")} (
                    id text PRIMARY KEY,
                    created_at timestamptz NOT NULL,
                    status text NOT NULL,
                    cancel_requested boolean NOT NULL DEFAULT false,
                    snapshot jsonb NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now())
                """);
            Execute(connection, transaction, $"CREATE INDEX ON {Table("training_jobs")} (created_at DESC)");
            Execute(connection, transaction, $"""
                CREATE TABLE {Table("active_model")} (
                    id integer PRIMARY KEY CHECK (id = 1),
                    name text NOT NULL,
                    version integer NOT NULL,
                    changed_at timestamptz NOT NULL DEFAULT now())
                """);
            ImportSingleProcessRecords(connection, transaction);
        });
        yield return (2, (connection, transaction) =>
        {
            // Paging (newest first, by status), retention (finished before a cutoff) and the workers' capabilities.
            Execute(connection, transaction, $"ALTER TABLE {Table("training_jobs")} ADD COLUMN finished_at timestamptz");
            Execute(connection, transaction, $"UPDATE {Table("training_jobs")} SET finished_at = (snapshot->>'finishedAt')::timestamptz WHERE snapshot->>'finishedAt' IS NOT NULL");
            Execute(connection, transaction, $"CREATE INDEX ON {Table("training_jobs")} (created_at DESC, id DESC)");
            Execute(connection, transaction, $"CREATE INDEX ON {Table("training_jobs")} (status, created_at DESC)");
            Execute(connection, transaction, $"""
                CREATE TABLE {Table("workers")} (
                    id text PRIMARY KEY,
                    seen_at timestamptz NOT NULL,
                    capabilities jsonb NOT NULL)
                """);
        });
    }

    private void ImportSingleProcessRecords(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        var imported = 0;
        foreach (var (job, damaged) in FileTrainingJobStore.ReadAll(JobFolders.Root(folders)))
        {
            if (job is null)
            {
                LogDamagedNotImported(logger, damaged!.JobId, damaged.Reason);
                continue;
            }

            using var command = new NpgsqlCommand(
                $"INSERT INTO {Table("training_jobs")} (id, created_at, status, snapshot) VALUES (@id, @created, @status, @snapshot) ON CONFLICT (id) DO NOTHING",
                connection, transaction);
            command.Parameters.AddWithValue("id", job.JobId);
            command.Parameters.AddWithValue("created", job.CreatedAt);
            command.Parameters.AddWithValue("status", job.Status.ToString());
            command.Parameters.AddWithValue("snapshot", NpgsqlDbType.Jsonb, PostgresTrainingJobStore.Serialize(job));
            imported += command.ExecuteNonQuery();
        }

        var active = new ActiveModelFile(folders.ResolvedModelsDirectory).Read();
        if (active is not null)
        {
            Execute(connection, transaction, $"INSERT INTO {Table("active_model")} (id, name, version) VALUES (1, @name, @version) ON CONFLICT (id) DO NOTHING",
                ("name", active.Name), ("version", active.Version));
        }

        if (imported > 0 || active is not null)
        {
            LogImported(logger, imported, active is null ? "-" : $"{active.Name} v{active.Version}");
        }
    }

    private static void Execute(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, params (string Name, object Value)[] parameters)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        command.ExecuteNonQuery();
    }

    public ValueTask DisposeAsync() => dataSource.DisposeAsync();

    [LoggerMessage(Level = LogLevel.Information, Message = "Shared state: schema {Schema} at version {Version}")]
    private static partial void LogMigrated(ILogger logger, string schema, int version);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shared state: job {JobId}'s record file is damaged and was not read into PostgreSQL (it stays on disk): {Reason}")]
    private static partial void LogDamagedNotImported(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shared state: read {Jobs} job records and the active model ({Active}) of the single-process files into PostgreSQL")]
    private static partial void LogImported(ILogger logger, int jobs, string active);
}
