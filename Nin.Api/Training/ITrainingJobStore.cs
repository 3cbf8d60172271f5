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

    JobSnapshot Create(TrainSettings settings);

    JobSnapshot? Get(string jobId);

    /// <summary>Every job, newest first.</summary>
    IReadOnlyList<JobSnapshot> List();

    /// <summary>
    /// Applies a change atomically (null from <paramref name="change"/>: no change) and returns the new snapshot.
    /// <paramref name="persist"/> false for high-rate progress updates, which a store may keep local or write at a bounded rate.
    /// </summary>
    JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true);
}

/// <summary>The folder of a job's checkpoint: <c>{Nin:WorkDirectory}/jobs/{id}</c>, whichever store keeps the record.</summary>
public static class JobFolders
{
    public static string Root(Infrastructure.NinOptions options) => Path.Combine(options.ResolvedWorkDirectory, "jobs");
}
