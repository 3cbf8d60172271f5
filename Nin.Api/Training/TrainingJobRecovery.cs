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

        var unfinished = jobs.Unfinished().ToList();
        foreach (var job in unfinished.OrderBy(j => j.CreatedAt))
        {
            jobs.Update(job.JobId, j => j.IsFinished ? null : j with { Status = JobStatus.Queued });
            var id = hangfire.Enqueue<TrainingJob>(t => t.RunAsync(job.JobId, CancellationToken.None));
            jobs.Update(job.JobId, j => j with { HangfireJobId = id });
            LogRequeued(logger, job.JobId);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: queued again after a restart")]
    private static partial void LogRequeued(ILogger logger, string jobId);
}
