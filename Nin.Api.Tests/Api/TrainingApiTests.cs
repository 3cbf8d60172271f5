using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Models;
using Nin.Api.Training;

namespace Nin.Api.Tests.Api;

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class TrainingApiTests : IClassFixture<TrainingApiTests.Fixture>
{
    private readonly Fixture fixture;

    public TrainingApiTests(Fixture fixture) => this.fixture = fixture;

    public sealed class Fixture : IDisposable
    {
        public NinApiFactory Factory { get; } = new();

        public void Dispose() => Factory.Dispose();
    }

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    private HttpClient Client => fixture.Factory.CreateClient();

    internal static async Task<JobSnapshot> WaitForAsync(HttpClient client, string jobId, Func<JobSnapshot, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var job = await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{jobId}", UriKind.Relative), Json);
            if (condition(job!))
            {
                return job!;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Job {jobId} is {job!.Status} after {timeout}: {JsonSerializer.Serialize(job, Json)}");
            }

            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_real_job_trains_reports_live_and_stores_a_model_version()
    {
        using var client = Client;
        await using var hub = fixture.Factory.CreateHubConnection();
        var epochs = new ConcurrentQueue<EpochCompletedEvent>();
        var statuses = new ConcurrentQueue<JobStatus>();
        var batches = new ConcurrentQueue<BatchProgressEvent>();
        var finished = new TaskCompletionSource<JobFinishedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<EpochCompletedEvent>(nameof(ITrainingClient.EpochCompleted), epochs.Enqueue);
        hub.On<BatchProgressEvent>(nameof(ITrainingClient.BatchProgress), batches.Enqueue);
        hub.On<JobSnapshot>(nameof(ITrainingClient.JobUpdated), s => statuses.Enqueue(s.Status));
        hub.On<JobFinishedEvent>(nameof(ITrainingClient.JobFinished), e => finished.TrySetResult(e));
        await hub.StartAsync();

        // Hold the single worker with a job so ours is seen Queued first.
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = "fashion-mnist", epochs = 2, batchSize = 64, imageSize = 96, seed = 3,
            maxTrainImages = 1200, maxTestImages = 300, modelName = "fm-test",
        });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<TrainAccepted>(Json);
        Assert.NotNull(accepted);
        Assert.Equal(JobStatus.Queued, accepted.Status);
        Assert.Equal($"/train/{accepted.JobId}", response.Headers.Location?.AbsolutePath);
        var subscribed = await hub.InvokeAsync<JobSnapshot>(nameof(TrainingHub.Subscribe), accepted.JobId);
        Assert.Equal(accepted.JobId, subscribed.JobId);

        var done = await finished.Task.WaitAsync(TimeSpan.FromMinutes(3));

        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("fm-test", done.ModelName);
        Assert.Equal(1, done.ModelVersion);
        var received = epochs.ToArray();
        Assert.Equal([1, 2], received.Select(e => e.Epoch));
        Assert.All(received, e =>
        {
            Assert.Equal(2, e.Epochs);
            Assert.True(double.IsFinite(e.TrainLoss) && e.TrainLoss > 0);
            Assert.InRange(e.TrainAccuracy, 0, 1);
            Assert.InRange(e.TestAccuracy, 0, 1);
            Assert.True(e.ExamplesPerSecond > 0);
        });
        Assert.NotEmpty(batches);
        Assert.All(batches, b => Assert.Equal(19, b.Batches));
        Assert.Contains(JobStatus.Running, statuses);

        var job = await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{accepted.JobId}", UriKind.Relative), Json);
        Assert.NotNull(job);
        Assert.Equal(JobStatus.Succeeded, job.Status);
        Assert.Equal("cpu", job.Device);
        Assert.Equal(2, job.Epochs.Count);
        Assert.NotNull(job.StartedAt);
        Assert.NotNull(job.FinishedAt);
        Assert.Equal(96, job.Request.ImageSize);
        Assert.Equal(0.1, job.Request.LearningRate);

        // The stored version matches the job.
        var models = await client.GetFromJsonAsync<ModelsResponse>(new Uri("/models", UriKind.Relative), Json);
        var version = Assert.Single(models!.Models, m => m.Name == "fm-test").Versions.Single();
        Assert.Equal(1, version.Version);
        Assert.Equal("fashion-mnist", version.Dataset);
        Assert.Equal(96, version.ImageSize);
        Assert.Equal(10, version.Classes.Count);
        Assert.Equal("Ankle boot", version.Classes[9]);
        Assert.Equal(job.Epochs[^1].TestAccuracy, version.TestAccuracy);
        Assert.Equal(1200, version.Metadata.Recipe!.TrainImages);
        Assert.Equal(300, version.Metadata.Recipe.TestImages);
        Assert.Equal(64, version.Metadata.Recipe.BatchSize);
        Assert.Equal(2, version.Metadata.Metrics!.Epochs.Count);

        // A client that subscribes after the end receives the final snapshot.
        await using var late = fixture.Factory.CreateHubConnection();
        var snapshot = new TaskCompletionSource<JobSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        late.On<JobSnapshot>(nameof(ITrainingClient.JobUpdated), s => snapshot.TrySetResult(s));
        await late.StartAsync();
        await late.InvokeAsync<JobSnapshot>(nameof(TrainingHub.Subscribe), accepted.JobId);
        var final = await snapshot.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobStatus.Succeeded, final.Status);
        Assert.Equal(2, final.Epochs.Count);
        Assert.Equal(1, final.ModelVersion);

        var list = await client.GetFromJsonAsync<JobSnapshot[]>(new Uri("/train", UriKind.Relative), Json);
        Assert.Contains(list!, j => j.JobId == accepted.JobId);

        // Operators see the run in /metrics.
        var metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("nin_training_last_epoch_loss", metrics, StringComparison.Ordinal);
        var succeeded = metrics.Split('\n').Single(l => l.StartsWith("nin_training_jobs{", StringComparison.Ordinal) && l.Contains("status=\"Succeeded\"", StringComparison.Ordinal));
        Assert.True(double.Parse(succeeded[(succeeded.IndexOf('}', StringComparison.Ordinal) + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) >= 1, succeeded);
    }

    [Fact]
    public async Task Cancelling_a_running_job_stops_it_within_a_batch_and_the_next_job_runs()
    {
        using var client = Client;
        var long_ = await StartAsync(client, new { epochs = 50, batchSize = 16, imageSize = 96, maxTrainImages = 4000, maxTestImages = 50, modelName = "cancelled" });
        var next = await StartAsync(client, new { epochs = 1, batchSize = 32, imageSize = 67, maxTrainImages = 64, maxTestImages = 32, modelName = "after-cancel" });

        var running = await WaitForAsync(client, long_, j => j.Status == JobStatus.Running && j.Progress.Batch >= 1, TimeSpan.FromMinutes(1));
        Assert.Equal(JobStatus.Queued, (await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{next}", UriKind.Relative), Json))!.Status);

        using var cancel = await client.DeleteAsync(new Uri($"/train/{long_}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var cancelled = await WaitForAsync(client, long_, j => j.Status != JobStatus.Running, TimeSpan.FromSeconds(15));
        Assert.Equal(JobStatus.Cancelled, cancelled.Status);
        Assert.True(cancelled.Progress.Epoch <= 1, "the job ran on past its first epoch");
        Assert.True(cancelled.Progress.Batch < running.Progress.Batches, "the job finished its epoch instead of stopping");

        var after = await WaitForAsync(client, next, j => j.Status is JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromMinutes(1));
        Assert.Equal(JobStatus.Succeeded, after.Status);

        // Cancelling a finished job is a conflict, not a success.
        using var again = await client.DeleteAsync(new Uri($"/train/{long_}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task A_cancelled_queued_job_never_starts()
    {
        using var client = Client;
        var blocker = await StartAsync(client, new { epochs = 50, batchSize = 16, imageSize = 96, maxTrainImages = 4000, maxTestImages = 50, modelName = "blocker" });
        var queued = await StartAsync(client, new { epochs = 1, imageSize = 67, maxTrainImages = 32, maxTestImages = 32, modelName = "never" });
        using (var cancel = await client.DeleteAsync(new Uri($"/train/{queued}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        }

        using (var cancel = await client.DeleteAsync(new Uri($"/train/{blocker}", UriKind.Relative)))
        {
            Assert.True(cancel.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK);
        }

        await WaitForAsync(client, blocker, j => j.Status == JobStatus.Cancelled, TimeSpan.FromSeconds(30));

        // Hangfire's own entry is deleted, so no worker can take it up; and a job queued after it runs to the end on the
        // one training worker while the cancelled one never starts (the queue is first in, first out, so had the
        // cancelled job still been runnable, it would have run first). No sleeping to prove a negative.
        var job = await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{queued}", UriKind.Relative), Json);
        Assert.NotNull(job!.HangfireJobId);
        var storage = fixture.Factory.Services.GetRequiredService<Hangfire.JobStorage>();
        Assert.Equal("Deleted", storage.GetMonitoringApi().JobDetails(job.HangfireJobId)?.History.FirstOrDefault()?.StateName);

        var after = await StartAsync(client, new { epochs = 1, imageSize = 67, maxTrainImages = 32, maxTestImages = 32, modelName = "after" });
        await WaitForAsync(client, after, j => j.Status is JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromMinutes(3));
        job = await client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{queued}", UriKind.Relative), Json);
        Assert.Equal(JobStatus.Cancelled, job!.Status);
        Assert.Null(job.StartedAt);
    }

    private static async Task<string> StartAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), body);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
    }

    public static TheoryData<string, string> InvalidRequests => new()
    {
        { """{"epochs":0}""", "epochs" },
        { """{"epochs":100000}""", "epochs" },
        { """{"learningRate":0}""", "learningRate" },
        { """{"learningRate":-1}""", "learningRate" },
        { """{"learningRate":"NaN"}""", "learningRate" },
        { """{"batchSize":0}""", "batchSize" },
        { """{"batchSize":100000}""", "batchSize" },
        { """{"imageSize":64}""", "imageSize" },
        { """{"imageSize":5000}""", "imageSize" },
        { """{"dataset":"imagenet"}""", "dataset" },
        { """{"device":"tpu"}""", "device" },
        { """{"momentum":1.5}""", "momentum" },
        { """{"weightDecay":-0.1}""", "weightDecay" },
        { """{"maxTrainImages":0}""", "maxTrainImages" },
        { """{"maxTestImages":-5}""", "maxTestImages" },
        { """{"modelName":"../etc"}""", "modelName" },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public async Task Invalid_fields_get_400_problem_details_naming_the_field(string json, string field)
    {
        using var client = Client;
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/train", UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<ValidationProblemDetails>();
        Assert.NotNull(problem);
        Assert.Contains(field, problem.Errors.Keys);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("""{"epochs":"many"}""")]
    [InlineData("[1,2,3]")]
    public async Task Malformed_json_gets_400_problem_details(string json)
    {
        using var client = Client;
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/train", UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Unknown_jobs_are_404_problem_details()
    {
        using var client = Client;
        using var get = await client.GetAsync(new Uri("/train/nope", UriKind.Relative));
        using var delete = await client.DeleteAsync(new Uri("/train/nope", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        var problem = await get.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Contains("nope", problem!.Detail, StringComparison.Ordinal);

        await using var hub = fixture.Factory.CreateHubConnection();
        await hub.StartAsync();
        var ex = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<JobSnapshot>(nameof(TrainingHub.Subscribe), "nope"));
        Assert.Contains("Unknown training job", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Datasets_lists_the_built_ins_with_counts()
    {
        using var client = Client;
        var list = await client.GetFromJsonAsync<JsonElement[]>(new Uri("/datasets", UriKind.Relative));
        var fm = list!.Single(d => d.GetProperty("name").GetString() == "fashion-mnist");
        Assert.Equal(60000, fm.GetProperty("train").GetInt32());
        Assert.Equal(10000, fm.GetProperty("test").GetInt32());
        Assert.Equal(10, fm.GetProperty("classes").GetArrayLength());
        Assert.True(fm.GetProperty("available").GetBoolean());
    }
}
