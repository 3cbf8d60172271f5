using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Training;

namespace Nin.Api.Tests.Api;

/// <summary>DELETE of a queued job against the job starting at the same moment: a job cancelled while queued never runs.</summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class JobCancellationRaceTests : IDisposable
{
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });

    public void Dispose() => factory.Dispose();

    [Fact]
    public async Task A_queued_job_cancelled_while_it_starts_never_runs()
    {
        _ = factory.Server; // start the host
        var services = factory.Services;
        var store = services.GetRequiredService<ITrainingJobStore>();
        var cancellation = services.GetRequiredService<JobCancellation>();
        var notifier = services.GetRequiredService<TrainingNotifier>();
        var cancelledWhileQueued = 0;
        var started = 0;

        for (var i = 0; i < 600; i++)
        {
            // A dataset that does not exist: a job that does start fails at once instead of training.
            var job = store.Create(new TrainSettings("no-such-dataset", 1, 8, 0.1, 0, 0, 67, 0, "cpu", "race", null, null, false));
            var runner = services.GetRequiredService<TrainingJob>();
            using var barrier = new Barrier(2);
            var run = Task.Run(async () =>
            {
                barrier.SignalAndWait();
                await runner.RunAsync(job.JobId, CancellationToken.None);
            });
            var cancel = Task.Run(() =>
            {
                barrier.SignalAndWait();
                return TrainingApi.CancelJob(job.JobId, store, cancellation, notifier).Result;
            });
            await run;
            var answer = await cancel;

            var final = store.Get(job.JobId)!;
            if (answer is Ok<JobSnapshot>)
            {
                cancelledWhileQueued++;
                Assert.True(final.Status == JobStatus.Cancelled && final.StartedAt is null,
                    $"iteration {i}: DELETE answered 200 (cancelled while queued), yet the job ran and is {final.Status} (started {final.StartedAt})");
            }
            else
            {
                started++;
                Assert.NotEqual(JobStatus.Queued, final.Status);
            }
        }

        // Both orders happened, so the race was exercised.
        Assert.True(cancelledWhileQueued > 0 && started > 0, $"{cancelledWhileQueued} cancelled while queued, {started} started first");
    }
}
