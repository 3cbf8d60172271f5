using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
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
public sealed class PostgresTrainingJobStore(SharedStateDatabase database, IOptions<NinOptions> folders) : ITrainingJobStore, ICancellationRelay
{
    private readonly ConcurrentDictionary<string, (JobSnapshot Snapshot, long WrittenAt)> progress = new();
    private readonly string root = JobFolders.Root(folders.Value);

    public string JobDirectory(string jobId) => Path.Combine(root, jobId);

    public JobSnapshot Create(TrainSettings settings)
    {
        var snapshot = JobSnapshot.New(settings);
        using var connection = database.Open();
        using var command = new NpgsqlCommand(
            $"INSERT INTO {database.Table("training_jobs")} (id, created_at, status, snapshot) VALUES (@id, @created, @status, @snapshot)", connection);
        command.Parameters.AddWithValue("id", snapshot.JobId);
        command.Parameters.AddWithValue("created", snapshot.CreatedAt);
        command.Parameters.AddWithValue("status", snapshot.Status.ToString());
        command.Parameters.AddWithValue("snapshot", NpgsqlDbType.Jsonb, Serialize(snapshot));
        command.ExecuteNonQuery();
        return snapshot;
    }

    public JobSnapshot? Get(string jobId)
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT snapshot FROM {database.Table("training_jobs")} WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", jobId);
        return command.ExecuteScalar() is string json ? WithLocalProgress(Deserialize(json)) : null;
    }

    public IReadOnlyList<JobSnapshot> List()
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand($"SELECT snapshot FROM {database.Table("training_jobs")} ORDER BY created_at DESC", connection);
        using var reader = command.ExecuteReader();
        var jobs = new List<JobSnapshot>();
        while (reader.Read())
        {
            jobs.Add(WithLocalProgress(Deserialize(reader.GetString(0))));
        }

        return jobs;
    }

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

            current = Deserialize(json);
        }

        if (change(current) is not { } updated)
        {
            return null;
        }

        using (var write = new NpgsqlCommand(
            $"UPDATE {database.Table("training_jobs")} SET snapshot = @snapshot, status = @status, updated_at = now(), cancel_requested = cancel_requested AND @unfinished WHERE id = @id",
            connection, transaction))
        {
            write.Parameters.AddWithValue("id", jobId);
            write.Parameters.AddWithValue("status", updated.Status.ToString());
            write.Parameters.AddWithValue("unfinished", updated.Status is JobStatus.Running or JobStatus.Queued);
            write.Parameters.AddWithValue("snapshot", NpgsqlDbType.Jsonb, Serialize(updated));
            write.ExecuteNonQuery();
        }

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

    private static JobSnapshot Deserialize(string json) =>
        JsonSerializer.Deserialize<JobSnapshot>(json, ModelMetadata.JsonOptions) ?? throw new JsonException("A job record is empty.");

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
