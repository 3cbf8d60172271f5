using Microsoft.AspNetCore.SignalR;

namespace Nin.Api.Training;

/// <summary>What the training hub sends to its clients.</summary>
public interface ITrainingClient
{
    Task JobUpdated(JobSnapshot snapshot);

    Task BatchProgress(BatchProgressEvent progress);

    Task EpochCompleted(EpochCompletedEvent epoch);

    Task JobFinished(JobFinishedEvent finished);
}

/// <summary>
/// Live training updates at <c>/hubs/training</c>. Subscribing joins a job's group and immediately
/// sends its current snapshot, so a late subscriber misses nothing. Every snapshot and event carries the job's
/// revision: events are sent without waiting for slow clients and may arrive out of order (several replicas, Redis),
/// so a client keeps, per job, only what is at least as new as what it has.
/// </summary>
public sealed class TrainingHub(ITrainingJobStore store, Microsoft.Extensions.Options.IOptions<TrainingJobOptions> options) : Hub<ITrainingClient>
{
    public const string AllGroup = "jobs:all";

    public static string JobGroup(string jobId) => "job:" + jobId;

    /// <summary>Follow one job; answers with its current snapshot (also sent as JobUpdated).</summary>
    public async Task<JobSnapshot> Subscribe(string jobId)
    {
        if (Find(jobId) is null)
        {
            throw new HubException($"Unknown training job '{jobId}'.");
        }

        await Groups.AddToGroupAsync(Context.ConnectionId, JobGroup(jobId));
        var snapshot = Find(jobId)!;
        await Clients.Caller.JobUpdated(snapshot);
        return snapshot;
    }

    public Task Unsubscribe(string jobId) => Groups.RemoveFromGroupAsync(Context.ConnectionId, JobGroup(jobId));

    /// <summary>
    /// Follow every job; answers with the recent snapshots (<c>Training:HubRecentJobs</c>, newest first) and every
    /// queued or running one, not the whole history: GET /train pages through the rest.
    /// </summary>
    public async Task<IReadOnlyList<JobSnapshot>> SubscribeAll()
    {
        await Groups.AddToGroupAsync(Context.ConnectionId, AllGroup);
        var recent = options.Value.HubRecentJobs;
        var active = store.List(new JobQuery(recent, Statuses: [JobStatus.Queued, JobStatus.Running])).Items;
        var newest = store.List(new JobQuery(recent)).Items;
        return [.. JobOrder.NewestFirst(newest.UnionBy(active, j => j.JobId))];
    }

    private JobSnapshot? Find(string jobId)
    {
        try
        {
            return store.Get(jobId);
        }
        catch (DamagedJobException ex)
        {
            throw new HubException(ex.Message);
        }
    }

    public Task UnsubscribeAll() => Groups.RemoveFromGroupAsync(Context.ConnectionId, AllGroup);
}

/// <summary>Sends job events to the job's subscribers and to those following all jobs.</summary>
public sealed class TrainingNotifier(IHubContext<TrainingHub, ITrainingClient> hub, ILogger<TrainingNotifier> logger)
{
    private ITrainingClient Audience(string jobId) => hub.Clients.Groups(TrainingHub.JobGroup(jobId), TrainingHub.AllGroup);

    public void JobUpdated(JobSnapshot snapshot) => Send(Audience(snapshot.JobId).JobUpdated(snapshot));

    public void BatchProgress(BatchProgressEvent progress) => Send(Audience(progress.JobId).BatchProgress(progress));

    public void EpochCompleted(EpochCompletedEvent epoch) => Send(Audience(epoch.JobId).EpochCompleted(epoch));

    public void JobFinished(JobFinishedEvent finished) => Send(Audience(finished.JobId).JobFinished(finished));

    // Fire and forget: the training thread never waits on a slow client. Order is not guaranteed; the revisions are.
    private void Send(Task task) => task.ContinueWith(
        t => logger.LogWarning(t.Exception, "Could not send a training event"),
        CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
}
