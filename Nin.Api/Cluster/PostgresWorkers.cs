using System.Text.Json;
using Microsoft.Extensions.Options;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Npgsql;
using NpgsqlTypes;

namespace Nin.Api.Cluster;

/// <summary>
/// The workers' capabilities as rows of <c>{schema}.workers</c>: each process that runs jobs writes its own every
/// <see cref="SharedStateOptions.WorkerHeartbeatInterval"/> (<see cref="WorkerHeartbeat"/>); a row not renewed within
/// <see cref="SharedStateOptions.WorkerTimeout"/> is a worker that is gone (stopped, killed, paused, cut off).
/// </summary>
public sealed class PostgresWorkerDirectory(SharedStateDatabase database) : IWorkerDirectory
{
    public IReadOnlyList<WorkerCapabilities> Live()
    {
        using var connection = database.Open();
        using var command = new NpgsqlCommand(
            $"SELECT capabilities FROM {database.Table("workers")} WHERE seen_at > now() - @timeout ORDER BY id", connection);
        command.Parameters.AddWithValue("timeout", database.Options.WorkerTimeout);
        using var reader = command.ExecuteReader();
        var workers = new List<WorkerCapabilities>();
        while (reader.Read())
        {
            try
            {
                if (JsonSerializer.Deserialize<WorkerCapabilities>(reader.GetString(0), ModelMetadata.JsonOptions) is { } worker)
                {
                    workers.Add(worker);
                }
            }
            catch (JsonException)
            {
                // A row written by a build with another shape: that worker cannot be judged, so it is not counted.
            }
        }

        return workers;
    }

    public async Task PublishAsync(WorkerCapabilities capabilities, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"INSERT INTO {database.Table("workers")} (id, seen_at, capabilities) VALUES (@id, now(), @capabilities) " +
            "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, capabilities = excluded.capabilities", connection);
        command.Parameters.AddWithValue("id", capabilities.WorkerId);
        command.Parameters.AddWithValue("capabilities", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(capabilities, ModelMetadata.JsonOptions));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Removes this worker's row (and rows of workers gone for a long time, so the table does not grow).</summary>
    public async Task RemoveAsync(string workerId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"DELETE FROM {database.Table("workers")} WHERE id = @id OR seen_at < now() - interval '1 day'", connection);
        command.Parameters.AddWithValue("id", workerId);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>
/// Publishes this process's capabilities (<see cref="LocalWorker"/>) once before the Hangfire server starts taking jobs
/// and then every <see cref="SharedStateOptions.WorkerHeartbeatInterval"/>; removes them on a clean stop. PostgreSQL out of
/// reach only delays the next beat: it never stops the process or its shutdown.
/// </summary>
internal sealed partial class WorkerHeartbeat(
    PostgresWorkerDirectory directory, LocalWorker local, IOptions<SharedStateOptions> options, ILogger<WorkerHeartbeat> logger) : BackgroundService
{
    private bool lost;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        await BeatAsync(timeout.Token);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.WorkerHeartbeatInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await BeatAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await directory.RemoveAsync(WorkerIdentity.Current, timeout.Token);
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or TimeoutException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            // Gone with the database: its row expires after the worker timeout.
        }
    }

    private async Task BeatAsync(CancellationToken cancellationToken)
    {
        try
        {
            await directory.PublishAsync(local.Describe(), cancellationToken);
            if (lost)
            {
                lost = false;
                LogBack(logger);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException or System.Net.Sockets.SocketException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            if (!lost)
            {
                lost = true;
                LogLost(logger, ex.GetBaseException().Message);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker capabilities not published ({Reason}): API replicas do not count this worker until PostgreSQL answers again")]
    private static partial void LogLost(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker capabilities published again")]
    private static partial void LogBack(ILogger logger);
}
