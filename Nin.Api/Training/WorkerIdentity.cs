namespace Nin.Api.Training;

/// <summary>
/// This process as a job's runner (<see cref="JobSnapshot.Worker"/>): host, process id and a random suffix, so a restarted
/// process with a reused pid is another worker.
/// </summary>
public static class WorkerIdentity
{
    public static string Current { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";
}

/// <summary>The job's record names another worker: it took the job over, so this run stops.</summary>
public sealed class JobTakenOverException(string jobId) : Exception($"Training job '{jobId}' is run by another worker now.");
