using Microsoft.Extensions.Options;

namespace Nin.Api.Training;

/// <summary>
/// Deletes finished job records older than <see cref="TrainingJobOptions.FinishedJobRetention"/>, at start and every
/// <see cref="TrainingJobOptions.RetentionSweepInterval"/>; the model versions they produced stay in the store. Every
/// process may sweep (the deletion is one statement on PostgreSQL); queued and running jobs are never touched.
/// </summary>
internal sealed partial class JobRetention(ITrainingJobStore jobs, IOptions<TrainingJobOptions> options, ILogger<JobRetention> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retention = options.Value.FinishedJobRetention;
        if (retention <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.RetentionSweepInterval);
        do
        {
            Sweep(retention);
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    /// <summary>One sweep; returns the ids removed.</summary>
    public IReadOnlyList<string> Sweep(TimeSpan retention)
    {
        try
        {
            var removed = jobs.DeleteFinishedBefore(DateTimeOffset.UtcNow - retention);
            if (removed.Count > 0)
            {
                LogRemoved(logger, removed.Count, retention);
            }

            return removed;
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or IOException or TimeoutException or InvalidOperationException)
        {
            LogFailed(logger, ex.GetBaseException().Message);
            return [];
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention: removed {Count} finished job records older than {Retention} (their models stay)")]
    private static partial void LogRemoved(ILogger logger, int count, TimeSpan retention);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Retention: the sweep failed ({Reason}); it runs again at the next interval")]
    private static partial void LogFailed(ILogger logger, string reason);
}
