using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Transactions;
using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Npgsql;
using NpgsqlTypes;

namespace Nin.Api.Cluster;

/// <summary>
/// Job records in PostgreSQL (<c>{schema}.training_jobs</c>, the snapshot as jsonb), so every API replica and worker sees
/// the same jobs. Changes are read-modify-write under a row lock. Batch progress, many times a second, is written at
/// most once per <see cref="SharedStateOptions.ProgressWriteInterval"/> (live progress reaches clients through the hub);
/// status changes and epochs are written at once. Cancellation of a running job is a flag on its row plus a NOTIFY
/// (<see cref="ICancellationRelay"/>).
/// </summary>
public sealed partial class PostgresTrainingJobStore(
    SharedStateDatabase database, IOptions<NinOptions> folders, IOptions<HangfireOptions> hangfire, ILogger<PostgresTrainingJobStore> logger)
    : ITrainingJobStore, ICancellationRelay
{
    private readonly ConcurrentDictionary<string, (JobSnapshot Snapshot, long WrittenAt)> progress = new();
    private readonly ConcurrentDictionary<string, DamagedJobRecord> damaged = new();
    private readonly string root = JobFolders.Root(folders.Value);

    public string JobDirectory(string jobId) => Path.Combine(root, jobId);

    /// <summary>
    /// The record and Hangfire's job in one PostgreSQL transaction: Hangfire's storage is given this transaction's
    /// connection (an ambient <see cref="TransactionScope"/> that Hangfire.PostgreSql joins), so a worker can fetch the
    /// job only once its record is committed with it, and a failed enqueue rolls the record back.
    /// </summary>
    public JobSnapshot Create(TrainSettings settings, Func<IBackgroundJobClient, JobSnapshot, string>? enqueue)
    {
        var snapshot = JobSnapshot.New(settings);
        using var connection = database.Open(); // migrated and opened before the scope, so nothing else enlists
        using (var scope = new TransactionScope(TransactionScopeOption.RequiresNew, new TransactionOptions { IsolationLevel = IsolationLevel.ReadCommitted }))
        {
            connection.EnlistTransaction(Transaction.Current);
            Insert(connection, snapshot);
            if (enqueue is not null)
            {
                var options = new PostgreSqlStorageOptions
                {
                    SchemaName = hangfire.Value.PostgresSchema,
                    PrepareSchemaIfNecessary = false,
                    EnableTransactionScopeEnlistment = true,
                    UseSlidingInvisibilityTimeout = false,
                };
                var storage = new PostgreSqlStorage(new ExistingNpgsqlConnectionFactory(connection, options), options);
                snapshot = snapshot with { HangfireJobId = enqueue(new BackgroundJobClient(storage), snapshot) };
                Write(connection, snapshot);
            }

            scope.Complete();
        }

        return snapshot;
    }

    public JobSnapshot? Get(string jobId)
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT snapshot FROM {database.Table("training_jobs")} WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", jobId);
        return command.ExecuteScalar() is string json
            ? WithLocalProgress(Read(jobId, json) ?? throw new DamagedJobException(damaged[jobId]))
            : null;
    }

    public JobPage List(JobQuery query)
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand(
            $"SELECT id, created_at, snapshot FROM {database.Table("training_jobs")} " +
            "WHERE (@all OR status = ANY(@statuses)) AND (@first OR (created_at, id) < (@created, @after)) " +
            "ORDER BY created_at DESC, id DESC LIMIT @limit", connection);
        var statuses = query.Statuses is { Count: > 0 } s ? s.Select(x => x.ToString()).ToArray() : [];
        command.Parameters.AddWithValue("all", statuses.Length == 0);
        command.Parameters.AddWithValue("statuses", statuses);
        command.Parameters.AddWithValue("first", query.After is null);
        command.Parameters.AddWithValue("created", query.After?.CreatedAt ?? DateTimeOffset.UnixEpoch);
        command.Parameters.AddWithValue("after", query.After?.JobId ?? "");
        command.Parameters.AddWithValue("limit", query.Limit + 1);
        using var reader = command.ExecuteReader();
        var jobs = new List<JobSnapshot>();
        var rows = 0;
        JobCursor last = default;
        while (reader.Read())
        {
            if (++rows > query.Limit)
            {
                // One more row exists: the next page starts after the last row of this one (damaged rows included).
                return new JobPage(jobs, last.ToString());
            }

            var id = reader.GetString(0);
            last = new JobCursor(JobCursor.Microseconds(reader.GetFieldValue<DateTimeOffset>(1)), id);
            if (Read(id, reader.GetString(2)) is { } job)
            {
                jobs.Add(WithLocalProgress(job));
            }
        }

        return new JobPage(jobs, null);
    }

    public IReadOnlyDictionary<JobStatus, int> CountByStatus()
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT status, count(*) FROM {database.Table("training_jobs")} GROUP BY status", connection);
        using var reader = command.ExecuteReader();
        var counts = new Dictionary<JobStatus, int>();
        while (reader.Read())
        {
            if (Enum.TryParse<JobStatus>(reader.GetString(0), out var status))
            {
                counts[status] = (int)reader.GetInt64(1);
            }
        }

        return counts;
    }

    public JobSnapshot? LatestWithEpochs()
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand(
            $"SELECT id, snapshot FROM {database.Table("training_jobs")} WHERE jsonb_array_length(snapshot->'epochs') > 0 ORDER BY created_at DESC, id DESC LIMIT 1", connection);
        using var reader = command.ExecuteReader();
        return reader.Read() ? Read(reader.GetString(0), reader.GetString(1)) : null;
    }

    public IReadOnlyList<string> DeleteFinishedBefore(DateTimeOffset cutoff)
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand(
            $"DELETE FROM {database.Table("training_jobs")} WHERE status = ANY(@finished) AND coalesce(finished_at, created_at) < @cutoff RETURNING id", connection);
        command.Parameters.AddWithValue("finished", new[] { nameof(JobStatus.Succeeded), nameof(JobStatus.Failed), nameof(JobStatus.Cancelled), nameof(JobStatus.Stopped) });
        command.Parameters.AddWithValue("cutoff", cutoff.ToUniversalTime());
        using var reader = command.ExecuteReader();
        var removed = new List<string>();
        while (reader.Read())
        {
            removed.Add(reader.GetString(0));
        }

        foreach (var id in removed)
        {
            progress.TryRemove(id, out _);
            damaged.TryRemove(id, out _);
            try
            {
                var dir = JobDirectory(id);
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true); // its checkpoint folder on the shared volume, if any is left
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return removed;
    }

    public IReadOnlyList<DamagedJobRecord> Damaged() => [.. damaged.Values.OrderBy(d => d.JobId, StringComparer.Ordinal)];

    public JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true)
    {
        if (!persist && progress.TryGetValue(jobId, out var last) && Stopwatch.GetElapsedTime(last.WrittenAt) < database.Options.ProgressWriteInterval)
        {
            // Kept here until the next write; this process's own reads see it.
            var next = change(last.Snapshot);
            if (next is not null)
            {
                progress[jobId] = (next, last.WrittenAt);
            }

            return next;
        }

        using var connection = database.Open();
        using var transaction = connection.BeginTransaction();
        JobSnapshot current;
        using (var select = new NpgsqlCommand($"SELECT snapshot FROM {database.Table("training_jobs")} WHERE id = @id FOR UPDATE", connection, transaction))
        {
            select.Parameters.AddWithValue("id", jobId);
            if (select.ExecuteScalar() is not string json)
            {
                return null;
            }

            current = Read(jobId, json) ?? throw new DamagedJobException(damaged[jobId]);
        }

        if (change(current) is not { } updated)
        {
            return null;
        }

        if (persist)
        {
            updated = updated with { Revision = current.Revision + 1 };
        }

        Write(connection, updated, transaction);
        transaction.Commit();
        if (updated.Status == JobStatus.Running)
        {
            progress[jobId] = (updated, Stopwatch.GetTimestamp());
        }
        else
        {
            progress.TryRemove(jobId, out _);
        }

        return updated;
    }

    public bool Request(string jobId)
    {
        using var connection = database.Open();
        using var transaction = connection.BeginTransaction();
        using var command = new NpgsqlCommand(
            $"UPDATE {database.Table("training_jobs")} SET cancel_requested = true, updated_at = now() WHERE id = @id AND status = @running", connection, transaction);
        command.Parameters.AddWithValue("id", jobId);
        command.Parameters.AddWithValue("running", nameof(JobStatus.Running));
        if (command.ExecuteNonQuery() == 0)
        {
            return false;
        }

        database.Notify(connection, transaction, SharedStateEvents.Cancel(jobId));
        transaction.Commit();
        return true;
    }

    public bool IsRequested(string jobId)
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT cancel_requested FROM {database.Table("training_jobs")} WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", jobId);
        return command.ExecuteScalar() is true;
    }

    internal static string Serialize(JobSnapshot snapshot) => JsonSerializer.Serialize(snapshot, ModelMetadata.JsonOptions);

    private void Insert(NpgsqlConnection connection, JobSnapshot snapshot)
    {
        using var command = new NpgsqlCommand(
            $"INSERT INTO {database.Table("training_jobs")} (id, created_at, status, snapshot) VALUES (@id, @created, @status, @snapshot)", connection);
        command.Parameters.AddWithValue("id", snapshot.JobId);
        command.Parameters.AddWithValue("created", snapshot.CreatedAt);
        command.Parameters.AddWithValue("status", snapshot.Status.ToString());
        command.Parameters.AddWithValue("snapshot", NpgsqlDbType.Jsonb, Serialize(snapshot));
        command.ExecuteNonQuery();
    }

    private void Write(NpgsqlConnection connection, JobSnapshot updated, NpgsqlTransaction? transaction = null)
    {
        using var write = new NpgsqlCommand(
            $"UPDATE {database.Table("training_jobs")} SET snapshot = @snapshot, status = @status, finished_at = @finished, updated_at = now(), cancel_requested = cancel_requested AND @unfinished WHERE id = @id",
            connection, transaction);
        write.Parameters.AddWithValue("id", updated.JobId);
        write.Parameters.AddWithValue("status", updated.Status.ToString());
        write.Parameters.AddWithValue("finished", NpgsqlDbType.TimestampTz, (object?)updated.FinishedAt?.ToUniversalTime() ?? DBNull.Value);
        write.Parameters.AddWithValue("unfinished", updated.Status is JobStatus.Running or JobStatus.Queued);
        write.Parameters.AddWithValue("snapshot", NpgsqlDbType.Jsonb, Serialize(updated));
        write.ExecuteNonQuery();
    }

    // A row whose snapshot no longer reads as a job (written by another version, edited by hand) is listed as damaged.
    private JobSnapshot? Read(string jobId, string json)
    {
        try
        {
            if (JsonSerializer.Deserialize<JobSnapshot>(json, ModelMetadata.JsonOptions) is { Request: not null } job)
            {
                return job;
            }

            MarkDamaged(jobId, "its snapshot is empty or has no request");
        }
        catch (JsonException ex)
        {
            MarkDamaged(jobId, $"its snapshot is not a valid job record: {ex.Message}");
        }

        return null;
    }

    private void MarkDamaged(string jobId, string reason)
    {
        if (damaged.TryAdd(jobId, new DamagedJobRecord(jobId, reason)))
        {
            LogDamaged(logger, jobId, reason);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId}: its record in PostgreSQL is damaged and is listed as such (GET /train/damaged); it is kept, not deleted: {Reason}")]
    private static partial void LogDamaged(ILogger logger, string jobId, string reason);

    // A job running in this process shows its latest batch, not the last one written.
    private JobSnapshot WithLocalProgress(JobSnapshot stored) =>
        stored.Status == JobStatus.Running && progress.TryGetValue(stored.JobId, out var local) && local.Snapshot.Status == JobStatus.Running
            ? stored with { Progress = local.Snapshot.Progress }
            : stored;
}

/// <summary>The payloads on the shared channel.</summary>
public static class SharedStateEvents
{
    public const string Active = "active";
    private const string CancelPrefix = "cancel:";

    public static string Cancel(string jobId) => CancelPrefix + jobId;

    public static string? CancelledJob(string payload) => payload.StartsWith(CancelPrefix, StringComparison.Ordinal) ? payload[CancelPrefix.Length..] : null;
}
