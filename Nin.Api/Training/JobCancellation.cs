using System.Collections.Concurrent;

namespace Nin.Api.Training;

/// <summary>
/// Carries a cancellation to the process that runs a job, when that may be another one (PostgreSQL: a flag on the job's
/// row and a NOTIFY the workers listen for).
/// </summary>
public interface ICancellationRelay
{
    /// <summary>Records that a running job should stop and tells the other processes; false if the job is not running.</summary>
    bool Request(string jobId);

    /// <summary>Whether a cancellation was requested for the job (checked when a job starts or resumes).</summary>
    bool IsRequested(string jobId);
}

/// <summary>Cancellation sources of the jobs running in this process, so DELETE stops a job within one batch.</summary>
public sealed class JobCancellation(IEnumerable<ICancellationRelay> relays)
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> running = new();
    private readonly ConcurrentDictionary<string, byte> requested = new();
    private readonly ICancellationRelay? relay = relays.FirstOrDefault();

    /// <summary>The jobs running here now.</summary>
    public IReadOnlyCollection<string> Running => running.Keys.ToArray();

    public CancellationTokenSource Register(string jobId, CancellationToken hangfireToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(hangfireToken);
        running[jobId] = cts;
        if (relay?.IsRequested(jobId) == true)
        {
            requested[jobId] = 0;
            cts.Cancel(); // asked before this process took the job up (or before a worker died with it)
        }

        return cts;
    }

    public void Unregister(string jobId)
    {
        requested.TryRemove(jobId, out _);
        if (running.TryRemove(jobId, out var cts))
        {
            cts.Dispose();
        }
    }

    /// <summary>
    /// Whether someone asked this job to stop (DELETE /train, its deletion in Hangfire) — as opposed to the process
    /// shutting down or Hangfire taking the attempt away, after which the job is queued again.
    /// </summary>
    public bool WasRequested(string jobId)
    {
        if (requested.ContainsKey(jobId))
        {
            return true;
        }

        try
        {
            return relay?.IsRequested(jobId) == true;
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return false; // the shared state is out of reach: treated as an interruption, the job is retried
        }
    }

    /// <summary>Stops a running job here, or asks the process that runs it; false if it runs nowhere.</summary>
    public bool Request(string jobId) => Cancel(jobId) || relay?.Request(jobId) == true;

    /// <summary>Signals a job running in this process to stop; false if it is not running here.</summary>
    public bool Cancel(string jobId)
    {
        if (!running.TryGetValue(jobId, out var cts))
        {
            return false;
        }

        requested[jobId] = 0;
        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        return true;
    }
}
