using Hangfire;

namespace Nin.Api.Training;

/// <summary>
/// Training job records as the API shows them. One process: <see cref="FileTrainingJobStore"/> (memory plus a
/// <c>job.json</c> per job). With PostgreSQL configured: <see cref="Cluster.PostgresTrainingJobStore"/>, one table every
/// API replica and worker reads and writes. Epoch checkpoints stay files in <see cref="JobDirectory"/> (a shared folder
/// when several processes run).
/// </summary>
public interface ITrainingJobStore
{
    /// <summary>The job's folder for its epoch checkpoint.</summary>
    string JobDirectory(string jobId);

    /// <summary>
    /// Creates a record and queues its run as one step: <paramref name="enqueue"/> gets the Hangfire client to queue it
    /// with (on PostgreSQL, one bound to the transaction that inserts the record) and returns Hangfire's job id. Either
    /// both exist afterwards or neither: when <paramref name="enqueue"/> or the write fails, no record is left behind.
    /// Without <paramref name="enqueue"/> the record is only written (for a caller that runs the job itself).
    /// </summary>
    JobSnapshot Create(TrainSettings settings, Func<IBackgroundJobClient, JobSnapshot, string>? enqueue);

    /// <summary>A record without a queue entry (<see cref="Create(TrainSettings, Func{IBackgroundJobClient, JobSnapshot, string}?)"/> without enqueue).</summary>
    JobSnapshot Create(TrainSettings settings) => Create(settings, null);

    /// <summary>The record, or null for an unknown id; <see cref="DamagedJobException"/> when it exists but cannot be read.</summary>
    JobSnapshot? Get(string jobId);

    /// <summary>A page of records, newest first.</summary>
    JobPage List(JobQuery query);

    /// <summary>Every queued or running job, newest first (paged through, so never the finished history).</summary>
    IEnumerable<JobSnapshot> Unfinished()
    {
        var query = new JobQuery(JobQuery.MaxLimit, Statuses: [JobStatus.Queued, JobStatus.Running]);
        for (var page = List(query); ; page = List(query with { After = JobCursor.Parse(page.NextCursor) }))
        {
            foreach (var job in page.Items)
            {
                yield return job;
            }

            if (page.NextCursor is null)
            {
                yield break;
            }
        }
    }

    /// <summary>How many records have each status (one aggregate, not a read of every record).</summary>
    IReadOnlyDictionary<JobStatus, int> CountByStatus();

    /// <summary>The newest record with at least one finished epoch, or null.</summary>
    JobSnapshot? LatestWithEpochs();

    /// <summary>
    /// Applies a change atomically (null from <paramref name="change"/>: no change) and returns the new snapshot.
    /// A persisted change raises <see cref="JobSnapshot.Revision"/> by one.
    /// <paramref name="persist"/> false for high-rate progress updates, which a store may keep local or write at a bounded
    /// rate; they keep the revision.
    /// </summary>
    JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true);

    /// <summary>Deletes finished records (Succeeded, Failed, Cancelled) that finished before <paramref name="cutoff"/>; returns their ids.</summary>
    IReadOnlyList<string> DeleteFinishedBefore(DateTimeOffset cutoff);

    /// <summary>Records that exist but cannot be read, with the reason.</summary>
    IReadOnlyList<DamagedJobRecord> Damaged();
}

/// <summary>A job record exists but cannot be read; the message says why.</summary>
public sealed class DamagedJobException(DamagedJobRecord record) : Exception($"The record of training job '{record.JobId}' is damaged: {record.Reason}")
{
    public DamagedJobRecord Record { get; } = record;
}

/// <summary>The folder of a job's checkpoint: <c>{Nin:WorkDirectory}/jobs/{id}</c>, whichever store keeps the record.</summary>
public static class JobFolders
{
    public static string Root(Infrastructure.NinOptions options) => Path.Combine(options.ResolvedWorkDirectory, "jobs");
}
