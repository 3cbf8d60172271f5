using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using SkiaSharp;
using Xunit.Abstractions;
using static Nin.Api.Tests.Api.TrainingApiTests;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// The scale-out topology as real processes on loopback: two <c>api</c> replicas and a <c>worker</c> sharing one home
/// folder, a real PostgreSQL (jobs, the active model, LISTEN/NOTIFY) and a real Redis (the SignalR backplane). A job posted
/// to api A is followed over SignalR on api B through every epoch; its model, activated on B, is what A serves; DELETE on
/// B stops a job on the worker; a job survives kill -9 of its worker and a fresh worker finishes it from its checkpoint.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class ScaleOutTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Invisibility = TimeSpan.FromSeconds(10);

    private static Dictionary<string, string?> Settings(string home, string schema, string prefix, string role) => new()
    {
        ["Nin:Home"] = home,
        ["Nin:Role"] = role,
        ["Nin:SeedDefaultModel"] = "false",
        ["Hangfire:PostgresConnection"] = TestServers.Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["Hangfire:InvisibilityTimeout"] = Invisibility.ToString(),
        ["SharedState:Schema"] = schema + "_nin",
        ["SignalR:Redis"] = TestServers.Redis,
        ["SignalR:ChannelPrefix"] = prefix,
        // Predictions: ONNX Runtime on one thread, so three processes on two cores stay responsive.
        ["Serving:ThreadsPerPass"] = "1",
    };

    [Fact]
    public async Task Two_api_replicas_and_a_worker_share_jobs_events_models_cancellation_and_survive_a_killed_worker()
    {
        var home = Directory.CreateTempSubdirectory("nin-scale-").FullName;
        var schema = TestServers.NewSchema("nin_scale");
        var prefix = "nin-test-" + Guid.NewGuid().ToString("N")[..8];
        // The model served before any job: a random one, in the single-process store, read into PostgreSQL at first start.
        Api.ServingFixture.AddRandom(new ModelStore(Path.Combine(home, "models")), "base", seed: 1);
        var processes = new List<NinProcess>();
        try
        {
            // A re-reads the shared state only when notified (its periodic resync is pushed out of the test's reach), so
            // A serving B's activation below proves LISTEN/NOTIFY carried it, whatever the machine's speed.
            var aSettings = Settings(home, schema, prefix, "api");
            aSettings["SharedState:ResyncInterval"] = TimeSpan.FromHours(1).ToString();
            var a = NinProcess.Start(aSettings, "api-a", output);
            processes.Add(a);
            var b = NinProcess.Start(Settings(home, schema, prefix, "api"), "api-b", output);
            processes.Add(b);
            var worker = NinProcess.Start(Settings(home, schema, prefix, "worker"), "worker-1", output);
            processes.Add(worker);
            await Task.WhenAll(a.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)), b.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)), worker.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)));

            await AssertRolesAsync(a, b, worker);

            // 1. A job posted to A, followed on B over SignalR (WebSockets through B's own hub) through every epoch.
            await using var hub = new HubConnectionBuilder()
                .WithUrl(new Uri(b.BaseAddress, "/hubs/training"), o =>
                {
                    o.Transports = HttpTransportType.WebSockets;
                    o.SkipNegotiation = true;
                })
                .Build();
            var epochs = new List<int>();
            var batches = 0;
            var finished = new TaskCompletionSource<JobFinishedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
            hub.On<EpochCompletedEvent>(nameof(ITrainingClient.EpochCompleted), e =>
            {
                lock (epochs)
                {
                    epochs.Add(e.Epoch);
                }
            });
            hub.On<BatchProgressEvent>(nameof(ITrainingClient.BatchProgress), _ => Interlocked.Increment(ref batches));
            hub.On<JobFinishedEvent>(nameof(ITrainingClient.JobFinished), f => finished.TrySetResult(f));
            await hub.StartAsync();

            var first = await PostJobAsync(a, new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 256, maxTestImages = 64, modelName = "scaled", seed = 3, activate = false });
            var subscribed = await hub.InvokeAsync<JobSnapshot>("Subscribe", first);
            Assert.Equal(first, subscribed.JobId); // B read the record A created from PostgreSQL
            var done = await finished.Task.WaitAsync(TimeSpan.FromMinutes(4));
            Assert.True(done.Status == JobStatus.Succeeded, $"job {first} ended {done.Status}: {done.Error}\n{worker.Describe()}");
            lock (epochs)
            {
                // Every epoch reached the client on B, except any that ended before it subscribed (the snapshot had those).
                Assert.Equal([1, 2, 3], subscribed.Epochs.Select(e => e.Epoch).Concat(epochs).Distinct().Order());
                Assert.Equal(3 - subscribed.Epochs.Count, epochs.Count);
            }

            Assert.True(batches > 0, "no BatchProgress event reached the client on B");
            var record = await a.Client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{first}", UriKind.Relative), Json);
            Assert.Equal(("scaled", 1), (record!.ModelName, record.ModelVersion));

            // 2. Activated on B: A serves it within a second (PostgreSQL NOTIFY, then A loads it while "base" keeps serving).
            Assert.Equal(("base", 1), await ServedAsync(a));
            using (var activate = await b.Client.PostAsync(new Uri("/models/scaled/versions/1/activate?force=true", UriKind.Relative), null))
            {
                Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
            }

            var swap = Stopwatch.StartNew();
            var polls = new List<string>();
            while (true)
            {
                var sent = swap.Elapsed.TotalMilliseconds;
                var served = await ServedAsync(a);
                polls.Add($"{sent:F0}+{swap.Elapsed.TotalMilliseconds - sent:F0} ms: {served.Item1} v{served.Item2}");
                if (served == ("scaled", 1))
                {
                    break;
                }

                Assert.True(swap.Elapsed < TimeSpan.FromSeconds(30), $"A still serves the old version {swap.Elapsed.TotalSeconds:F1} s after B activated scaled v1 (no notification reached it?)\n{a.Describe()}");
                await Task.Delay(20);
            }

            swap.Stop();
            output.WriteLine($"A served the version activated on B after {swap.Elapsed.TotalMilliseconds:F0} ms (requests to A: {string.Join("; ", polls)})");
            Assert.Equal(("scaled", 1), await ServedAsync(b));

            // 3. DELETE on B stops a job running on the worker within about a batch.
            var second = await PostJobAsync(a, new { recipe = "robust", epochs = 50, batchSize = 32, imageSize = 67, maxTrainImages = 512, maxTestImages = 32, modelName = "cancelled", seed = 4 });
            await WaitForAsync(b.Client, second, j => j.Status == JobStatus.Running && j.Progress.Batch > 0, TimeSpan.FromMinutes(2));
            var cancel = Stopwatch.StartNew();
            using (var delete = await b.Client.DeleteAsync(new Uri($"/train/{second}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.Accepted, delete.StatusCode);
            }

            var cancelled = await WaitForAsync(a.Client, second, j => j.Status is JobStatus.Cancelled or JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromSeconds(30));
            cancel.Stop();
            Assert.Equal(JobStatus.Cancelled, cancelled.Status);
            Assert.True(cancelled.Epochs.Count < 50);
            Assert.Contains(worker.LogLines, l => l.Contains(second, StringComparison.Ordinal) && l.Contains("cancellation requested", StringComparison.Ordinal));
            output.WriteLine($"DELETE on B to Cancelled on the worker: {cancel.Elapsed.TotalMilliseconds:F0} ms");

            // 4. kill -9 of the worker mid-epoch: a fresh worker takes the job after the invisibility timeout and resumes it.
            var third = await PostJobAsync(b, new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 512, maxTestImages = 64, modelName = "survivor", seed = 5 });
            var midway = await WaitForAsync(a.Client, third, j => j.Epochs.Count >= 1 && j.Status == JobStatus.Running && j.Progress.Epoch == 2 && j.Progress.Batch > 0, TimeSpan.FromMinutes(3));
            var firstEpoch = (midway.Epochs[0].TrainLoss, midway.Epochs[0].Seconds);
            worker.KillHard();
            var killedAt = Stopwatch.StartNew();
            var fresh = NinProcess.Start(Settings(home, schema, prefix, "worker"), "worker-2", output);
            processes.Add(fresh);
            await fresh.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2));
            var resumed = await WaitForAsync(b.Client, third, j => j.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, Invisibility + TimeSpan.FromMinutes(4));
            Assert.True(resumed.Status == JobStatus.Succeeded, $"job {third} ended {resumed.Status}: {resumed.Error}\n{fresh.Describe()}");
            Assert.Equal([1, 2, 3], resumed.Epochs.Select(e => e.Epoch));
            Assert.True(resumed.ResumedAfterEpoch >= 1, "the fresh worker should have resumed from the epoch checkpoint");
            Assert.Equal(firstEpoch, (resumed.Epochs[0].TrainLoss, resumed.Epochs[0].Seconds)); // epoch 1 was not rerun
            Assert.Contains(fresh.LogLines, l => l.Contains(third, StringComparison.Ordinal) && l.Contains("resuming after epoch", StringComparison.Ordinal));
            output.WriteLine($"kill -9 to Succeeded on a fresh worker: {killedAt.Elapsed.TotalSeconds:F1} s (invisibility timeout {Invisibility.TotalSeconds:F0} s)");
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }

            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_worker_paused_past_the_invisibility_timeout_loses_its_job_to_another_and_then_leaves_it_alone()
    {
        var home = Directory.CreateTempSubdirectory("nin-takeover-").FullName;
        var schema = TestServers.NewSchema("nin_takeover");
        var prefix = "nin-test-" + Guid.NewGuid().ToString("N")[..8];
        var processes = new List<NinProcess>();
        try
        {
            var api = NinProcess.Start(Settings(home, schema, prefix, "api"), "api", output);
            processes.Add(api);
            var first = NinProcess.Start(Settings(home, schema, prefix, "worker"), "worker-1", output);
            processes.Add(first);
            await Task.WhenAll(api.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)), first.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)));

            var job = await PostJobAsync(api, new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 512, maxTestImages = 64, modelName = "contested", seed = 6 });
            var midway = await WaitForAsync(api.Client, job, j => j.Epochs.Count >= 1 && j.Status == JobStatus.Running && j.Progress.Epoch == 2 && j.Progress.Batch > 0, TimeSpan.FromMinutes(3));
            Assert.Contains($":{first.Pid}:", midway.Worker, StringComparison.Ordinal);

            // Worker 1 stops running (a long pause, a suspended VM) with the job in hand; worker 2 is free.
            first.Pause();
            var second = NinProcess.Start(Settings(home, schema, prefix, "worker"), "worker-2", output);
            processes.Add(second);
            await second.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2));
            var taken = await WaitForAsync(api.Client, job, j => j.Worker is { } w && w.Contains($":{second.Pid}:", StringComparison.Ordinal) && j.ResumedAfterEpoch is not null, Invisibility + TimeSpan.FromMinutes(2));
            Assert.True(taken.ResumedAfterEpoch >= 1, "worker 2 should resume from worker 1's epoch checkpoint");

            // Worker 1 wakes up: it finds the job taken over and stops without writing its record, checkpoint or a model.
            first.Resume();
            var done = await WaitForAsync(api.Client, job, j => j.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, TimeSpan.FromMinutes(4));
            Assert.True(done.Status == JobStatus.Succeeded, $"job {job} ended {done.Status}: {done.Error}\n{first.Describe()}\n{second.Describe()}");
            Assert.Contains($":{second.Pid}:", done.Worker, StringComparison.Ordinal);
            Assert.Equal([1, 2, 3], done.Epochs.Select(e => e.Epoch));
            await WaitUntilAsync(() => first.LogLines.Any(l => l.Contains(job, StringComparison.Ordinal) && l.Contains("taken over", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), first);
            Assert.DoesNotContain(first.LogLines, l => l.Contains("stored model", StringComparison.Ordinal));

            // One model version, stored by worker 2; the record stays Succeeded. Worker 1 logs "taken over" as the last
            // thing its attempt does (it then throws JobAbortedException), so what it could have written is written by now.
            var models = await api.Client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
            var contested = models.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "contested");
            Assert.True(contested.GetProperty("versions").GetArrayLength() == 1, $"expected one stored version of 'contested': {contested}");
            var after = await api.Client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{job}", UriKind.Relative), Json);
            Assert.Equal(JobStatus.Succeeded, after!.Status);
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }

            Directory.Delete(home, recursive: true);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, NinProcess process)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"condition not met within {timeout.TotalSeconds:F0} s\n{process.Describe()}");
            await Task.Delay(200);
        }
    }

    private static async Task AssertRolesAsync(NinProcess a, NinProcess b, NinProcess worker)
    {
        foreach (var (process, role) in new[] { (a, "api"), (b, "api"), (worker, "worker") })
        {
            var live = await process.Client.GetFromJsonAsync<JsonElement>(new Uri("/health/live", UriKind.Relative));
            Assert.Equal(role, live.GetProperty("role").GetString());
            Assert.Contains(process.LogLines, l => l.Contains($"Nin role {role}:", StringComparison.Ordinal));
        }

        // A worker answers health and metrics only; its readiness does not ask for a served model.
        using (var train = await worker.Client.GetAsync(new Uri("/train", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, train.StatusCode);
        }

        using (var ready = await worker.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
        {
            var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(ready.StatusCode == HttpStatusCode.OK, $"worker readiness: {body}");
            Assert.False(body.GetProperty("checks").TryGetProperty("model", out _));
        }

        using (var metrics = await worker.Client.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        }
    }

    private static async Task<string> PostJobAsync(NinProcess api, object body)
    {
        using var response = await api.Client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{api.Name} answered POST /train with {response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
    }

    private static async Task<(string, int)> ServedAsync(NinProcess api)
    {
        using var content = new ByteArrayContent(TestImages.FashionImage(0, SKEncodedImageFormat.Png));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var response = await api.Client.PostAsync(new Uri("/predict", UriKind.Relative), content);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{api.Name} answered /predict with {response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var body = await response.Content.ReadFromJsonAsync<PredictResponse>(Json);
        return (body!.Model.Name, body.Model.Version);
    }
}
