namespace Nin.Api.Training;

/// <summary>
/// This process as a job's runner (<see cref="JobSnapshot.Worker"/>): host, process id and a random suffix, so a restarted
/// process with a reused pid is another worker.
/// </summary>
public static class WorkerIdentity
{
    public static string Current { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";
}

/// <summary>
/// The job's record no longer names this run: another worker took it over, or it ended elsewhere (deleted in Hangfire);
/// this run stops without touching it.
/// </summary>
public sealed class JobNotOursException(string jobId) : Exception($"Training job '{jobId}' is no longer run here.");

/// <summary>The worker that took the job up cannot run it (its device or the memory free now); the message says why.</summary>
public sealed class JobRefusedException(string message) : Exception(message);
