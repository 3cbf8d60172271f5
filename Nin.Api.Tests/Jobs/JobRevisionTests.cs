using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// Every snapshot and hub event of a job carries its revision: a client that keeps only what is at least as new as what
/// it has can never show a finished job running again, whatever order events arrive in.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class JobRevisionTests : IDisposable
{
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });

    public void Dispose() => factory.Dispose();

    [Fact]
    public async Task Snapshots_and_events_carry_revisions_that_order_them()
    {
        using var client = factory.CreateClient();
        await using var hub = factory.CreateHubConnection();
        var snapshots = new ConcurrentQueue<JobSnapshot>();
        var batches = new ConcurrentQueue<BatchProgressEvent>();
        var epochs = new ConcurrentQueue<EpochCompletedEvent>();
        var finished = new TaskCompletionSource<JobFinishedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<JobSnapshot>(nameof(ITrainingClient.JobUpdated), snapshots.Enqueue);
        hub.On<BatchProgressEvent>(nameof(ITrainingClient.BatchProgress), batches.Enqueue);
        hub.On<EpochCompletedEvent>(nameof(ITrainingClient.EpochCompleted), epochs.Enqueue);
        hub.On<JobFinishedEvent>(nameof(ITrainingClient.JobFinished), e => finished.TrySetResult(e));
        await hub.StartAsync();
        await hub.InvokeAsync<IReadOnlyList<JobSnapshot>>(nameof(TrainingHub.SubscribeAll));

        var job = await PostAsync(client, Tiny("revisions", epochs: 2));
        var done = await finished.Task.WaitAsync(TimeSpan.FromMinutes(3));
        var final = await WaitAsync(client, job, j => j.IsFinished);

        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.True(final.Revision > 1);
        Assert.Equal(final.Revision, done.Revision);
        var mine = snapshots.Where(s => s.JobId == job).ToList();
        Assert.All(mine, s => Assert.True(s.Revision >= 1, "every snapshot has a revision"));

        // Ordered by revision, the snapshots tell the job's story in order: Queued, then Running, then Succeeded.
        var story = mine.OrderBy(s => s.Revision).Select(s => s.Status).Distinct().ToList();
        Assert.Equal([JobStatus.Queued, JobStatus.Running, JobStatus.Succeeded], story);
        Assert.Equal(final.Revision, mine.Max(s => s.Revision));
        Assert.Single(mine, s => s.Revision == final.Revision && s.Status == JobStatus.Succeeded);
        foreach (var group in mine.GroupBy(s => s.Revision))
        {
            Assert.Single(group.Select(s => (s.Status, s.Epochs.Count)).Distinct()); // one revision, one state
        }

        // Events belong to the revision they followed: batches of epoch 2 come after epoch 1's snapshot, every event
        // before the end.
        var epoch1 = epochs.Single(e => e.JobId == job && e.Epoch == 1).Revision;
        Assert.True(epoch1 > 0 && epoch1 < final.Revision);
        Assert.All(batches.Where(b => b.JobId == job), b => Assert.InRange(b.Revision, 1, final.Revision - 1));
        Assert.All(batches.Where(b => b.JobId == job && b.Epoch == 2), b => Assert.True(b.Revision >= epoch1));
    }

    [Fact]
    public async Task The_202_of_a_cancellation_is_older_than_the_cancelled_snapshot_that_follows()
    {
        using var client = factory.CreateClient();
        var job = await PostAsync(client, Long("late-snapshot"));
        var running = await WaitAsync(client, job, j => j.Status == JobStatus.Running && j.Progress.Batch >= 1);

        using var cancel = await client.DeleteAsync(new Uri($"/train/{job}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var accepted = (await cancel.Content.ReadFromJsonAsync<JobSnapshot>(TrainingApiTests.Json))!;
        var cancelled = await WaitAsync(client, job, j => j.Status == JobStatus.Cancelled, 30);

        // The dashboard (and the README's client) keep the higher revision: the 202's Running never wins.
        Assert.Equal(JobStatus.Running, accepted.Status);
        Assert.True(accepted.Revision >= running.Revision);
        Assert.True(cancelled.Revision > accepted.Revision, $"Cancelled r{cancelled.Revision} must be newer than the 202's r{accepted.Revision}");
    }
}
