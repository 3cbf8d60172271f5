using Nin.Api.Training;
using Npgsql;

namespace Nin.Api.Cluster;

/// <summary>
/// Every process's ear on the shared channel (PostgreSQL <c>LISTEN</c>): an activation makes this process re-read the
/// active model (the registry then loads it while the old one keeps serving); a cancellation stops the job if it runs
/// here. Every <see cref="SharedStateOptions.ResyncInterval"/>, and after each reconnection, it also re-reads both
/// directly, so a notification lost while the connection was down is caught up.
/// </summary>
public sealed partial class SharedStateListener(
    SharedStateDatabase database, PostgresActiveModel active, PostgresTrainingJobStore jobs, JobCancellation cancellation, ILogger<SharedStateListener> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await database.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => Dispatch(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN \"{database.Channel}\"", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                LogListening(logger, database.Channel);
                delay = TimeSpan.FromSeconds(1);
                Resync();
                while (!stoppingToken.IsCancellationRequested)
                {
                    if (!await connection.WaitAsync(database.Options.ResyncInterval, stoppingToken))
                    {
                        Resync();
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException or TimeoutException)
            {
                LogLost(logger, ex.GetBaseException().Message, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 30));
            }
        }
    }

    private void Dispatch(string payload)
    {
        try
        {
            if (payload == SharedStateEvents.Active)
            {
                active.Refresh();
            }
            else if (SharedStateEvents.CancelledJob(payload) is { } jobId && cancellation.Cancel(jobId))
            {
                LogCancelling(logger, jobId);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            LogLost(logger, ex.GetBaseException().Message, 0);
        }
    }

    private void Resync()
    {
        active.Refresh();
        foreach (var jobId in cancellation.Running)
        {
            if (jobs.IsRequested(jobId) && cancellation.Cancel(jobId))
            {
                LogCancelling(logger, jobId);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shared state: listening on {Channel}")]
    private static partial void LogListening(ILogger logger, string channel);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shared state: the PostgreSQL connection for notifications is down ({Reason}); retrying in {Seconds} s")]
    private static partial void LogLost(ILogger logger, string reason, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: cancellation requested through the shared state; stopping it here")]
    private static partial void LogCancelling(ILogger logger, string jobId);
}
