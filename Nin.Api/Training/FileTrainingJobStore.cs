using System.Collections.Concurrent;
using System.Text.Json;
using Hangfire;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// The single-process job store: records in memory, persisted to <c>{work}/jobs/{id}/job.json</c> on every status change
/// and epoch (fsynced, renamed into place), so a restarted service still knows every job it accepted. A record that cannot
/// be read at start is kept on disk and listed as damaged, with the reason, never dropped silently.
/// </summary>
public sealed partial class FileTrainingJobStore : ITrainingJobStore
{
    private readonly ConcurrentDictionary<string, JobSnapshot> jobs = new();
    private readonly ConcurrentDictionary<string, DamagedJobRecord> damaged = new();
    private readonly ConcurrentDictionary<string, Lock> locks = new();
    private readonly IBackgroundJobClient hangfire;

    public FileTrainingJobStore(IOptions<NinOptions> options, IBackgroundJobClient hangfire, ILogger<FileTrainingJobStore> logger)
    {
        this.hangfire = hangfire;
        Root = Directory.CreateDirectory(JobFolders.Root(options.Value)).FullName;
        foreach (var (job, broken) in ReadAll(Root))
        {
            if (job is not null)
            {
                jobs[job.JobId] = job;
            }
            else if (broken is not null)
            {
                damaged[broken.JobId] = broken;
                LogDamaged(logger, broken.JobId, broken.Reason);
            }
        }
    }

    public const string FileName = "job.json";

    /// <summary>
    /// The records under <paramref name="root"/>, each either read or damaged with the reason (also read once into
    /// PostgreSQL when a deployment moves to it).
    /// </summary>
    public static IEnumerable<(JobSnapshot? Job, DamagedJobRecord? Damaged)> ReadAll(string root)
    {
        if (!Directory.Exists(root))
        {
            yield break;
        }

        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var id = Path.GetFileName(dir);
            if (id.StartsWith('.'))
            {
                continue; // a staging or swept folder, not a job
            }

            var file = Path.Combine(dir, FileName);
            if (!File.Exists(file))
            {
                continue; // a checkpoint folder whose record was never written (or was removed by retention)
            }

            JobSnapshot? job = null;
            string? reason = null;
            try
            {
                job = JsonSerializer.Deserialize<JobSnapshot>(File.ReadAllText(file), ModelMetadata.JsonOptions);
                if (job is null || job.JobId != id || job.Request is null)
                {
                    reason = job is null ? $"{FileName} is empty (null)." : job.JobId != id ? $"{FileName} names job '{job.JobId}', not its folder's." : $"{FileName} has no request.";
                    job = null;
                }
            }
            catch (JsonException ex)
            {
                reason = new FileInfo(file).Length == 0 ? $"{FileName} is empty (0 bytes; cut short by a crash or power cut)." : $"{FileName} is not a valid job record: {ex.Message}";
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                reason = $"{FileName} cannot be read: {ex.Message}";
            }

            yield return reason is null ? (job, null) : (null, new DamagedJobRecord(id, reason));
        }
    }

    public string Root { get; }

    public string JobDirectory(string jobId) => Path.Combine(Root, jobId);

    public JobSnapshot Create(TrainSettings settings, Func<IBackgroundJobClient, JobSnapshot, string>? enqueue)
    {
        var snapshot = JobSnapshot.New(settings);
        var dir = JobDirectory(snapshot.JobId);
        jobs[snapshot.JobId] = snapshot;
        try
        {
            // The record is on disk before its run is queued: a crash between the two leaves a queued record, which
            // TrainingJobRecovery queues again at start; a failed enqueue removes it again below.
            Persist(snapshot);
            if (enqueue is not null)
            {
                var hangfireId = enqueue(hangfire, snapshot);
                snapshot = Update(snapshot.JobId, j => j with { HangfireJobId = hangfireId }, persist: false) ?? snapshot;
                TryPersist(snapshot);
            }

            return snapshot;
        }
        catch
        {
            jobs.TryRemove(snapshot.JobId, out _);
            TryDeleteDirectory(dir);
            throw;
        }
    }

    public JobSnapshot? Get(string jobId) =>
        jobs.TryGetValue(jobId, out var job) ? job : damaged.TryGetValue(jobId, out var broken) ? throw new DamagedJobException(broken) : null;

    public JobPage List(JobQuery query) => JobOrder.Page(jobs.Values, query);

    public IReadOnlyDictionary<JobStatus, int> CountByStatus() =>
        jobs.Values.GroupBy(j => j.Status).ToDictionary(g => g.Key, g => g.Count());

    public JobSnapshot? LatestWithEpochs() => JobOrder.NewestFirst(jobs.Values.Where(j => j.Epochs.Count > 0)).FirstOrDefault();

    public JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true)
    {
        lock (locks.GetOrAdd(jobId, _ => new Lock()))
        {
            if (!jobs.TryGetValue(jobId, out var current) || change(current) is not { } next)
            {
                return null;
            }

            if (persist)
            {
                next = next with { Revision = current.Revision + 1 };
                Persist(next); // a write that fails leaves the record as it was, in memory and on disk
            }

            jobs[jobId] = next;
            return next;
        }
    }

    public IReadOnlyList<string> DeleteFinishedBefore(DateTimeOffset cutoff)
    {
        var removed = new List<string>();
        foreach (var job in jobs.Values.Where(j => j.IsFinished && (j.FinishedAt ?? j.CreatedAt) < cutoff))
        {
            lock (locks.GetOrAdd(job.JobId, _ => new Lock()))
            {
                if (jobs.TryGetValue(job.JobId, out var current) && current.IsFinished && jobs.TryRemove(job.JobId, out _))
                {
                    TryDeleteDirectory(JobDirectory(job.JobId));
                    locks.TryRemove(job.JobId, out _);
                    removed.Add(job.JobId);
                }
            }
        }

        return removed;
    }

    public IReadOnlyList<DamagedJobRecord> Damaged() => [.. damaged.Values.OrderBy(d => d.JobId, StringComparer.Ordinal)];

    private void Persist(JobSnapshot snapshot)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(snapshot, ModelMetadata.JsonOptions);
        try
        {
            var dir = Directory.CreateDirectory(JobDirectory(snapshot.JobId)).FullName;
            DurableFile.Write(Path.Combine(dir, FileName), bytes);
        }
        catch (Exception ex) when (DurableFile.IsDiskFull(ex))
        {
            throw InsufficientStorageException.From(ex, "the training job's record", Root, bytes.Length);
        }
    }

    private void TryPersist(JobSnapshot snapshot)
    {
        try
        {
            Persist(snapshot);
        }
        catch (IOException)
        {
            // Only the Hangfire id is missing on disk; memory has it, and a restart queues the job again anyway.
        }
    }

    private static void TryDeleteDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId}: its record is damaged and is listed as such (GET /train/damaged); it is kept on disk, not deleted: {Reason}")]
    private static partial void LogDamaged(ILogger logger, string jobId, string reason);
}
