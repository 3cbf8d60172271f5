using Hangfire;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;

namespace Nin.Api.Training;

/// <summary>
/// After a restart with in-memory job storage, Hangfire's queue is gone but the job records on disk
/// remain: jobs that were queued or running are queued again, and a running one resumes from its
/// last epoch checkpoint. With PostgreSQL, Hangfire requeues them itself.
/// </summary>
internal sealed partial class TrainingJobRecovery(
    ITrainingJobStore jobs, IBackgroundJobClient hangfire, IOptions<HangfireOptions> options, ILogger<TrainingJobRecovery> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.UsesPostgres)
        {
            return Task.CompletedTask;
        }

        foreach (var job in jobs.List().Where(j => j.Status is JobStatus.Queued or JobStatus.Running).OrderBy(j => j.CreatedAt))
        {
            jobs.Update(job.JobId, j => j with { Status = JobStatus.Queued });
            hangfire.Enqueue<TrainingJob>(t => t.RunAsync(job.JobId, CancellationToken.None));
            LogRequeued(logger, job.JobId);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: queued again after a restart")]
    private static partial void LogRequeued(ILogger logger, string jobId);
}
