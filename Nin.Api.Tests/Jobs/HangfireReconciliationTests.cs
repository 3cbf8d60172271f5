using System.Net;
using System.Net.Http.Json;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// Hangfire's decisions reach Nin's record (one process, in-memory Hangfire): a job deleted through Hangfire's API
/// (what /hangfire's Delete button calls) is Cancelled whether queued or running, a run whose PostgreSQL retries run out
/// is Failed with the reason, and a job Hangfire could not queue leaves no record behind.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class HangfireReconciliationTests
{
    [Fact]
    public async Task A_job_deleted_in_Hangfire_while_queued_is_cancelled_and_never_runs()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var blocker = await PostAsync(client, Long("blocker"));
        var queued = await PostAsync(client, Tiny("never"));
        await WaitAsync(client, blocker, j => j.Status == JobStatus.Running);
        var record = await WaitAsync(client, queued, j => j.HangfireJobId is not null);

        // What the dashboard's Delete does, through Hangfire's static API (JobStorage.Current is this host's).
        Assert.True(BackgroundJob.Delete(record.HangfireJobId));

        var cancelled = await WaitAsync(client, queued, j => j.Status != JobStatus.Queued, 10);
        Assert.Equal(JobStatus.Cancelled, cancelled.Status);
        Assert.NotNull(cancelled.FinishedAt);
        Assert.True(cancelled.Revision > record.Revision);

        using (var cancel = await client.DeleteAsync(new Uri($"/train/{blocker}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        await WaitAsync(client, blocker, j => j.Status == JobStatus.Cancelled, 30);
        await Task.Delay(1500);
        var after = await WaitAsync(client, queued, _ => true);
        Assert.Equal(JobStatus.Cancelled, after.Status);
        Assert.Null(after.StartedAt); // it never ran
    }

    [Fact]
    public async Task A_running_job_deleted_in_Hangfire_stops_and_is_cancelled_and_the_next_job_runs()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var running = await PostAsync(client, Long("deleted"));
        var next = await PostAsync(client, Tiny("next"));
        var started = await WaitAsync(client, running, j => j.Status == JobStatus.Running && j.Progress.Batch >= 1);

        var hangfire = factory.Services.GetRequiredService<IBackgroundJobClient>();
        Assert.True(hangfire.Delete(started.HangfireJobId));

        var cancelled = await WaitAsync(client, running, j => j.Status != JobStatus.Running, 15);
        Assert.Equal(JobStatus.Cancelled, cancelled.Status); // before: back to Queued, where nothing would run it
        Assert.True(cancelled.Progress.Epoch <= 1);

        // The run stopped: the worker takes the next job, and the deleted one stays cancelled with no model.
        var after = await FinishedAsync(client, next, 120);
        Assert.Equal(JobStatus.Succeeded, after.Status);
        var final = await WaitAsync(client, running, _ => true);
        Assert.Equal(JobStatus.Cancelled, final.Status);
        Assert.Null(final.ModelVersion);
        Assert.False(Directory.Exists(Path.Combine(Store(factory).JobDirectory(running), "checkpoint")), "a cancelled job's checkpoint is removed");
    }

    /// <summary>A store whose writes fail as if PostgreSQL were gone whenever a run tries to start.</summary>
    private sealed class UnreachableWhenStarting(ITrainingJobStore inner) : ForwardingStore(inner)
    {
        public int Refused;

        public override JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true) =>
            base.Update(jobId, j =>
            {
                var next = change(j);
                if (next is { Status: JobStatus.Running } && j.Status != JobStatus.Running)
                {
                    Interlocked.Increment(ref Refused);
                    throw new Npgsql.NpgsqlException("simulated: PostgreSQL is unreachable");
                }

                return next;
            }, persist);
    }

    [Fact]
    public async Task A_run_whose_PostgreSQL_retries_run_out_is_failed_in_its_record_with_the_reason()
    {
        UnreachableWhenStarting? store = null;
        using var factory = Factory(new()
        {
            ["Training:StorageRetries"] = "2",
            ["Training:StorageRetryDelays:0"] = "0",
        });
        using var flaky = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s =>
            s.AddSingleton<ITrainingJobStore>(sp => store = new UnreachableWhenStarting(ActivatorUtilities.CreateInstance<FileTrainingJobStore>(sp)))));
        using var client = flaky.CreateClient();
        var job = await PostAsync(client, Tiny("unreachable"));

        // Hangfire retries only PostgreSQL errors, twice here; its delayed-job poller moves each retry to the queue.
        var failed = await WaitAsync(client, job, j => j.Status is JobStatus.Failed or JobStatus.Succeeded or JobStatus.Cancelled, 150);
        Assert.Equal(JobStatus.Failed, failed.Status); // before: Running for ever
        Assert.Contains("PostgreSQL", failed.Error, StringComparison.Ordinal);
        Assert.Contains("3 attempts", failed.Error, StringComparison.Ordinal);
        Assert.Equal(3, store!.Refused);
        Assert.NotNull(failed.FinishedAt);

        // Hangfire agrees, and the record is final: DELETE is a conflict, not a 202 that does nothing.
        using (var connection = JobStorage.Current.GetConnection())
        {
            Assert.Equal(FailedState.StateName, connection.GetStateData(failed.HangfireJobId!).Name);
        }

        using var cancel = await client.DeleteAsync(new Uri($"/train/{job}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Conflict, cancel.StatusCode);
    }

    /// <summary>A Hangfire client whose storage refuses every new job.</summary>
    private sealed class RefusingClient : IBackgroundJobClient
    {
        public string Create(Job job, IState state) => throw new BackgroundJobClientException("simulated: the job storage refused the job", new TimeoutException());

        public bool ChangeState(string jobId, IState state, string expectedState) => false;
    }

    [Fact]
    public async Task A_job_Hangfire_cannot_queue_leaves_no_record_and_answers_503()
    {
        using var factory = Factory();
        using var refusing = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IBackgroundJobClient, RefusingClient>()));
        using var client = refusing.CreateClient();

        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), Tiny("orphan"));
        await SecurityApiTests.AssertProblem(response, HttpStatusCode.ServiceUnavailable);
        Assert.True(response.Headers.Contains("Retry-After"));

        var listed = await client.GetFromJsonAsync<JobSnapshot[]>(new Uri("/train", UriKind.Relative), TrainingApiTests.Json);
        Assert.Empty(listed!); // before: a Queued record nothing would ever run
        var jobsRoot = Path.Combine(factory.Home, "work", "jobs");
        Assert.True(!Directory.Exists(jobsRoot) || !Directory.EnumerateFileSystemEntries(jobsRoot).Any(), "no job folder is left behind");
    }
}
