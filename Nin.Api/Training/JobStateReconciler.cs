using System.Collections.Concurrent;
using Hangfire;
using Hangfire.States;
using Hangfire.Storage;

namespace Nin.Api.Training;

/// <summary>
/// Hangfire's decisions about a training job, written into Nin's record as Hangfire makes them, so the two never
/// disagree: <list type="bullet">
/// <item>Failed (the PostgreSQL retries ran out, or the run threw where it could not record it): the record is Failed with the reason.</item>
/// <item>Deleted (in <c>/hangfire</c>, or through Hangfire's API): a queued job is Cancelled; a running one is told to stop and is Cancelled.</item>
/// <item>Scheduled for a retry: the record goes back to Queued (a DELETE then cancels it at once).</item>
/// <item>Enqueued again from Failed or Deleted (the dashboard's Requeue): the record is Queued again and the run resumes from its checkpoint.</item>
/// <item>Succeeded while the record still says Queued or Running (a run that ended without recording its end): Failed, saying so.</item>
/// </list>
/// It also applies the retry policy (<see cref="TrainingJobOptions.StorageRetries"/>): a run that lost PostgreSQL is
/// scheduled again, nothing else is.
/// </summary>
public sealed partial class JobStateReconciler(
    ITrainingJobStore jobs, JobCancellation cancellation, TrainingNotifier notifier, JobStorage storage,
    Microsoft.Extensions.Options.IOptions<TrainingJobOptions> options, ILogger<JobStateReconciler> logger) : IHostedService
{
    private readonly AutomaticRetryAttribute retry = new()
    {
        Attempts = Math.Max(0, options.Value.StorageRetries),
        DelaysInSeconds = [.. Enumerable.Range(1, Math.Max(1, options.Value.StorageRetries)).Select(options.Value.RetryDelay)],
        OnlyOn = [typeof(Npgsql.NpgsqlException)],
        OnAttemptsExceeded = AttemptsExceededAction.Fail,
        LogEvents = true,
    };

    /// <summary>The retry policy of training runs: only after a PostgreSQL error, as configured.</summary>
    internal void Elect(ElectStateContext context)
    {
        if (context.BackgroundJob?.Job?.Type == typeof(TrainingJob))
        {
            retry.OnStateElection(context);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        HangfireStateBridge.Register(storage, this);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        HangfireStateBridge.Unregister(storage, this);
        return Task.CompletedTask;
    }

    internal void Applied(ApplyStateContext context)
    {
        var job = context.BackgroundJob?.Job;
        if (job?.Type != typeof(TrainingJob) || job.Args.Count == 0 || job.Args[0] is not string jobId)
        {
            return;
        }

        var state = context.NewState.Name;
        var from = context.OldStateName;
        if (state == FailedState.StateName)
        {
            Failed(jobId, context);
        }
        else if (state == DeletedState.StateName)
        {
            Deleted(jobId);
        }
        else if (state == ScheduledState.StateName && (from == ProcessingState.StateName || from == FailedState.StateName))
        {
            Retrying(jobId, context.NewState.Reason);
        }
        else if (state == EnqueuedState.StateName && (from == FailedState.StateName || from == DeletedState.StateName))
        {
            Requeued(jobId);
        }
        else if (state == SucceededState.StateName)
        {
            Ended(jobId);
        }
    }

    private void Failed(string jobId, ApplyStateContext context)
    {
        var failed = (FailedState)context.NewState;
        var attempts = 1 + RetryCount(context);
        var error = failed.Exception is Npgsql.NpgsqlException
            ? $"PostgreSQL, which keeps the job records, could not be reached on any of {attempts} attempts; Hangfire gave up (a run is retried only after a PostgreSQL error, {retry.Attempts} times: Training:StorageRetries)."
            : $"The run failed outside the training itself ({failed.Exception?.GetType().Name ?? "unknown error"}) after {attempts} attempt(s); the service's log has the details.";
        var updated = TryUpdate(jobId, j => j.IsFinished ? null : j with { Status = JobStatus.Failed, Error = error, FinishedAt = DateTimeOffset.UtcNow });
        if (updated is not null)
        {
            Announce(updated);
            LogRecorded(logger, jobId, "Failed", error);
        }
    }

    private void Deleted(string jobId)
    {
        // Tell a run to stop first (on PostgreSQL the flag is only set on a running record), then record the decision.
        if (jobs.Get(jobId) is { Status: JobStatus.Running })
        {
            cancellation.Request(jobId);
        }

        var updated = TryUpdate(jobId, j => j.IsFinished ? null : j with { Status = JobStatus.Cancelled, Error = null, FinishedAt = DateTimeOffset.UtcNow });
        if (updated is not null)
        {
            Announce(updated);
            LogRecorded(logger, jobId, "Cancelled", "deleted in Hangfire");
        }
    }

    private void Retrying(string jobId, string? reason)
    {
        var updated = TryUpdate(jobId, j => j.Status == JobStatus.Running && j.Worker == WorkerIdentity.Current
            ? j with { Status = JobStatus.Queued, Progress = j.Progress with { Batch = 0 } }
            : null);
        if (updated is not null)
        {
            notifier.JobUpdated(updated);
            LogRecorded(logger, jobId, "Queued", reason ?? "retry scheduled");
        }
    }

    private void Requeued(string jobId)
    {
        var updated = TryUpdate(jobId, j => j.Status is JobStatus.Failed or JobStatus.Cancelled
            ? j with { Status = JobStatus.Queued, Error = null, FinishedAt = null, Progress = j.Progress with { Batch = 0 } }
            : null);
        if (updated is not null)
        {
            notifier.JobUpdated(updated);
            LogRecorded(logger, jobId, "Queued", "requeued in Hangfire");
        }
    }

    private void Ended(string jobId)
    {
        const string Error = "The run ended without recording a result; the service's log has the details.";
        var updated = TryUpdate(jobId, j => !j.IsFinished && (j.Worker is null || j.Worker == WorkerIdentity.Current)
            ? j with { Status = JobStatus.Failed, Error = Error, FinishedAt = DateTimeOffset.UtcNow }
            : null);
        if (updated is not null)
        {
            Announce(updated);
            LogRecorded(logger, jobId, "Failed", Error);
        }
    }

    private void Announce(JobSnapshot updated)
    {
        notifier.JobUpdated(updated);
        notifier.JobFinished(new JobFinishedEvent(updated.JobId, updated.Status, updated.ModelName, updated.ModelVersion, updated.Error, updated.Warnings, updated.Revision));
    }

    private JobSnapshot? TryUpdate(string jobId, Func<JobSnapshot, JobSnapshot?> change)
    {
        try
        {
            return jobs.Update(jobId, change);
        }
        catch (DamagedJobException)
        {
            return null; // listed as damaged; nothing to write into
        }
    }

    private static int RetryCount(ApplyStateContext context)
    {
        try
        {
            var text = context.Connection.GetJobParameter(context.BackgroundJob.Id, "RetryCount");
            return int.TryParse(text?.Trim('"'), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return 0;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: recorded as {Status}, as Hangfire decided ({Reason})")]
    private static partial void LogRecorded(ILogger logger, string jobId, string status, string reason);
}

/// <summary>
/// The one global Hangfire filter (Hangfire's filters are process-wide; its storage is per host): it hands each state
/// change to the reconciler of the host whose storage the job lives in, so test hosts started one after another, or a
/// host being disposed, never act on each other's jobs.
/// </summary>
internal sealed class HangfireStateBridge : IApplyStateFilter, IElectStateFilter
{
    private static readonly ConcurrentDictionary<JobStorage, JobStateReconciler> Reconcilers = new(ReferenceEqualityComparer.Instance);
    private static readonly Lazy<HangfireStateBridge> Instance = new(() =>
    {
        var bridge = new HangfireStateBridge();
        GlobalJobFilters.Filters.Add(bridge);
        return bridge;
    });

    public static void Register(JobStorage storage, JobStateReconciler reconciler)
    {
        _ = Instance.Value;
        Reconcilers[storage] = reconciler;
    }

    public static void Unregister(JobStorage storage, JobStateReconciler reconciler) =>
        Reconcilers.TryRemove(new KeyValuePair<JobStorage, JobStateReconciler>(storage, reconciler));

    public void OnStateApplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
    {
        if (Reconcilers.TryGetValue(context.Storage, out var reconciler))
        {
            reconciler.Applied(context);
        }
    }

    public void OnStateUnapplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
    {
    }

    public void OnStateElection(ElectStateContext context)
    {
        if (Reconcilers.TryGetValue(context.Storage, out var reconciler))
        {
            reconciler.Elect(context);
        }
    }
}
