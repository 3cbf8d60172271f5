using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// A full disk (the service's home on a small tmpfs, filled up): writes answer 507 with what they needed and what is
/// free, leave nothing behind and change nothing; a run checks its space before it starts; readiness and /metrics show
/// the free space of each data folder.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class DiskFullTests
{
    private static NinApiFactory OnTmpfs(Tmpfs disk) => Factory(new() { ["Storage:MinimumFreeBytes"] = "0" }, disk.Path);

    private static bool IsTemporary(string path) => TemporaryFiles.IsTemporary(Path.GetFileName(path));

    [Fact]
    public async Task Writes_on_a_full_disk_answer_507_with_needed_and_free_and_leave_everything_as_it_was()
    {
        using var disk = Tmpfs.Mount(48L << 20);
        using var factory = OnTmpfs(disk);
        using var client = factory.CreateClient();
        var models = factory.Services.GetRequiredService<ModelStore>();
        ServingFixture.AddRandom(models, "r", seed: 1);
        ServingFixture.AddRandom(models, "r", seed: 2);
        using (var activate = await client.PostAsync(new Uri("/models/r/versions/1/activate", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
        }

        // Served (its ONNX file written) before the disk fills, so only the writes below meet the full disk.
        await WaitUntilAsync(() => client.GetAsync(new Uri("/health/ready", UriKind.Relative)).Result.StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(60), "r v1 served");
        var filler = disk.Fill();
        var before = Snapshot(disk.Path, f => f == filler);

        // POST /train: the record cannot be written. Before: 500, and a Queued record listed for ever.
        using (var train = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), Tiny("full")))
        {
            var problem = await SecurityApiTests.AssertProblem(train, HttpStatusCode.InsufficientStorage);
            var body = JsonDocument.Parse(await train.Content.ReadAsStringAsync()).RootElement;
            Assert.True(body.GetProperty("neededBytes").GetInt64() > 0, body.ToString());
            Assert.True(body.GetProperty("freeBytes").GetInt64() < body.GetProperty("neededBytes").GetInt64(), body.ToString());
            Assert.Equal("work", body.GetProperty("folder").GetString());
            Assert.Contains("free", problem.Detail, StringComparison.Ordinal);
        }

        Assert.Empty((await client.GetFromJsonAsync<JobSnapshot[]>(new Uri("/train", UriKind.Relative), TrainingApiTests.Json))!);

        // Activation: the pointer cannot be replaced; the served version stays.
        using (var activate = await client.PostAsync(new Uri("/models/r/versions/2/activate?force=true", UriKind.Relative), null))
        {
            await SecurityApiTests.AssertProblem(activate, HttpStatusCode.InsufficientStorage);
        }

        var listed = await client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
        Assert.Equal(1, listed.GetProperty("active").GetProperty("version").GetInt32());

        // Nothing left behind, nothing that existed changed.
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(disk.Path, "*", SearchOption.AllDirectories), IsTemporary);
        Assert.Equal(before, Snapshot(disk.Path, f => f == filler));
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(disk.Path, "work", "jobs")));
    }

    [Fact]
    public async Task A_dataset_upload_on_a_full_data_folder_is_a_507_and_leaves_nothing()
    {
        using var disk = Tmpfs.Mount(8L << 20);
        using var factory = Factory(new() { ["Nin:DataDirectory"] = disk.Path, ["Storage:MinimumFreeBytes"] = "0" });
        using var client = factory.CreateClient();
        var filler = disk.Fill();

        using var form = TestZips.Form(TestZips.TwoColourClasses());
        using var upload = await client.PostAsync(new Uri("/datasets", UriKind.Relative), form);
        await SecurityApiTests.AssertProblem(upload, HttpStatusCode.InsufficientStorage);
        Assert.Equal("data", JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement.GetProperty("folder").GetString());
        Assert.Equal([filler], Directory.EnumerateFiles(disk.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_run_checks_the_space_its_checkpoints_and_model_need_before_it_starts_and_names_the_cause()
    {
        using var disk = Tmpfs.Mount(24L << 20);
        using var factory = OnTmpfs(disk);
        using var client = factory.CreateClient();
        disk.Fill(leave: 3L << 20); // room for the record, not for an epoch checkpoint of a NiN (about 8 MB, twice)

        var job = await PostAsync(client, Tiny("no-room"));
        var failed = await FinishedAsync(client, job, 60);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Contains("Not enough disk space for the run's epoch checkpoints", failed.Error, StringComparison.Ordinal);
        Assert.Matches(@"needs about [\d.]+ MiB, [\d.]+ (MiB|KiB) free", failed.Error);
        Assert.Empty(failed.Epochs); // refused before training, not after its first epoch
        Assert.False(Directory.Exists(Path.Combine(Store(factory).JobDirectory(job), "checkpoint")));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(disk.Path, "*", SearchOption.AllDirectories), IsTemporary);
    }

    [Fact]
    public async Task Readiness_and_metrics_report_free_space_per_data_folder_degraded_below_the_floor()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Storage:MinimumFreeBytes"] = (1L << 50).ToString(System.Globalization.CultureInfo.InvariantCulture) });
        using var client = factory.CreateClient();
        using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode); // degraded, not unready: serving needs no writes
        Assert.Equal("ready, degraded", body.GetProperty("status").GetString());
        var disk = body.GetProperty("checks").GetProperty("diskSpace");
        Assert.Equal("Degraded", disk.GetProperty("status").GetString());
        foreach (var folder in new[] { "data", "models", "work" })
        {
            Assert.Contains(folder, disk.GetProperty("description").GetString(), StringComparison.Ordinal);
        }

        var metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        foreach (var folder in new[] { "data", "models", "work" })
        {
            Assert.Matches($"(?m)^nin_storage_free_bytes\\{{[^}}]*folder=\"{folder}\"[^}}]*\\}} [0-9.e+]+", metrics);
        }

        Assert.Contains("nin_storage_minimum_free_bytes", metrics, StringComparison.Ordinal);
    }
}
