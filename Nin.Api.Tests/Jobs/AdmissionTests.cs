using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Cluster;
using Nin.Api.Tests.Api;
using Nin.Api.Tests.Cluster;
using Nin.Api.Training;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// Admission is decided by the workers that would run the job, from the capabilities they publish, not by the process
/// that received POST /train; the worker checks again when it starts the job.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class AdmissionTests
{
    private static async Task<JsonElement> ConflictAsync(HttpResponseMessage response)
    {
        await SecurityApiTests.AssertProblem(response, HttpStatusCode.Conflict);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    [Fact]
    public async Task In_one_process_a_cuda_request_on_a_machine_without_CUDA_is_a_409_saying_no_worker_has_it()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { device = "cuda", epochs = 1 });
        var problem = await ConflictAsync(response);
        Assert.Contains("No worker has CUDA", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("cpu", problem.GetProperty("errors").GetProperty("device")[0].GetString(), StringComparison.Ordinal);
        Assert.Empty((await client.GetFromJsonAsync<JobSnapshot[]>(new Uri("/train", UriKind.Relative), TrainingApiTests.Json))!);
    }

    private sealed class SwitchProbe : TrainingMemoryProbe
    {
        public long Free { get; set; } = 64L << 30;

        public override long? AvailableBytes(string device) => Free;
    }

    [Fact]
    public async Task The_worker_checks_the_memory_again_when_the_job_starts_and_fails_it_with_the_reason()
    {
        var probe = new SwitchProbe();
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var switching = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TrainingMemoryProbe>(probe)));
        using var client = switching.CreateClient();
        var blocker = await PostAsync(client, Long("blocker"));
        await WaitAsync(client, blocker, j => j.Status == JobStatus.Running);
        var job = await PostAsync(client, new { epochs = 1, batchSize = 16, imageSize = 512, maxTrainImages = 32, maxTestImages = 16, modelName = "big" }); // admitted: 64 GiB free

        probe.Free = 1L << 30; // by the time it starts, 1 GiB
        using (var cancel = await client.DeleteAsync(new Uri($"/train/{blocker}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        var failed = await FinishedAsync(client, job, 60);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Contains("more than this worker has free", failed.Error, StringComparison.Ordinal);
        Assert.Null(failed.ModelVersion);
    }

    [Fact]
    public async Task A_job_whose_device_the_worker_lacks_fails_at_start_naming_it()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        // Queued behind admission's back (an older replica, a worker that changed since): the worker refuses it itself.
        var job = Store(factory).Create(Settings("cuda-job") with { Device = "cuda" },
            (hangfire, created) => Hangfire.BackgroundJobClientExtensions.Enqueue<TrainingJob>(hangfire, t => t.RunAsync(created.JobId, CancellationToken.None)));
        var failed = await FinishedAsync(client, job.JobId, 60);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Contains("CUDA", failed.Error, StringComparison.Ordinal);
    }

    private static WorkerCapabilities Worker(string id, string defaultDevice, long cpuFree, params string[] cuda) => new(
        id, "host-" + id, "worker", defaultDevice,
        [new DeviceCapability("cpu", cpuFree), .. cuda.Select(d => new DeviceCapability(d, null))],
        [.. Nin.Model.Network.NetworkArchitectures.Names], [.. Nin.Model.Training.TrainingRecipes.Names], 1L << 40, DateTimeOffset.UtcNow, null);

    [Fact]
    public async Task An_api_replica_admits_by_the_workers_published_capabilities_not_by_its_own_device_or_memory()
    {
        var home = Directory.CreateTempSubdirectory("nin-admission-").FullName;
        var schema = TestServers.NewSchema("nin_adm");
        using var factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:Role"] = "api",
            ["Nin:SeedDefaultModel"] = "false",
            ["Hangfire:PostgresConnection"] = TestServers.Postgres,
            ["Hangfire:PostgresSchema"] = schema,
            ["SharedState:Schema"] = schema + "_nin",
        }, home, ownsHome: true);
        using var client = factory.CreateClient();
        var workers = factory.Services.GetRequiredService<PostgresWorkerDirectory>();

        // No worker at all.
        using (var none = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), Tiny("nobody")))
        {
            Assert.Contains("No worker is running", (await ConflictAsync(none)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // A CPU worker: no CUDA anywhere.
        await workers.PublishAsync(Worker("cpu-1", "cpu", 8L << 30), CancellationToken.None);
        using (var cuda = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { device = "cuda", epochs = 1, modelName = "gpu" }))
        {
            Assert.Contains("No worker has CUDA", (await ConflictAsync(cuda)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // Its memory, not the API's: 1 GiB free there refuses what this machine could hold.
        await workers.PublishAsync(Worker("cpu-1", "cpu", 1L << 30), CancellationToken.None);
        using (var big = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { batchSize = 16, imageSize = 512, epochs = 1, modelName = "big" }))
        {
            var errors = (await ConflictAsync(big)).GetProperty("errors");
            Assert.True(errors.TryGetProperty("batchSize", out _) && errors.TryGetProperty("imageSize", out _), errors.ToString());
        }

        // A GPU worker appears: the API (which has no CUDA) accepts a CUDA job for it, and "auto" too.
        await workers.PublishAsync(Worker("gpu-1", "cuda", 8L << 30, "cuda:0"), CancellationToken.None);
        var cudaJob = await PostAsync(client, new { device = "cuda", epochs = 1, modelName = "gpu" });
        var bigOnGpu = await PostAsync(client, new { batchSize = 16, imageSize = 512, epochs = 1, modelName = "big", device = "auto" });
        using (var cuda1 = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { device = "cuda:1", epochs = 1 }))
        {
            Assert.Contains("cuda:1", (await ConflictAsync(cuda1)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        foreach (var id in new[] { cudaJob, bigOnGpu })
        {
            using var cancel = await client.DeleteAsync(new Uri($"/train/{id}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        }
    }
}
