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
/// After a crash: records and versions that cannot be read are listed as damaged with the reason (never dropped, never
/// deleted), an empty active pointer is recovered from its history or reported, and temporaries are swept at start.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class DamagedFilesTests
{
    private static NinApiFactory Start(string home) => Factory(home: home);

    private static async Task<JsonElement> ReadyAsync(HttpClient client)
    {
        using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        return await ready.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Fact]
    public async Task A_truncated_job_record_is_listed_as_damaged_with_the_reason_and_kept()
    {
        await WithHomeAsync(async home =>
        {
            string damaged, intact;
            using (var first = Start(home))
            {
                _ = first.Server;
                damaged = Store(first).Create(Settings("a")).JobId;
                intact = Store(first).Create(Settings("b")).JobId;
            }

            var file = Path.Combine(home, "work", "jobs", damaged, FileTrainingJobStore.FileName);
            var text = File.ReadAllText(file);
            File.WriteAllText(file, text[..(text.Length / 2)]); // cut short by a crash

            using var factory = Start(home);
            using var client = factory.CreateClient();
            var list = await client.GetFromJsonAsync<DamagedJobRecord[]>(new Uri("/train/damaged", UriKind.Relative));
            var entry = Assert.Single(list!);
            Assert.Equal(damaged, entry.JobId);
            Assert.Contains("not a valid job record", entry.Reason, StringComparison.Ordinal);
            Assert.DoesNotContain(home, entry.Reason, StringComparison.Ordinal);

            using (var get = await client.GetAsync(new Uri($"/train/{damaged}", UriKind.Relative)))
            {
                var problem = await SecurityApiTests.AssertProblem(get, HttpStatusCode.Conflict);
                Assert.Contains("damaged", problem.Title, StringComparison.Ordinal);
            }

            using (var readable = await client.GetAsync(new Uri($"/train/{intact}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.OK, readable.StatusCode); // the other record reads as before
            }

            Assert.True(File.Exists(file), "a damaged record is never deleted automatically");
            var records = (await ReadyAsync(client)).GetProperty("checks").GetProperty("records");
            Assert.Equal("Degraded", records.GetProperty("status").GetString());
            Assert.Contains(damaged, records.GetProperty("description").GetString(), StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task A_garbled_model_json_is_listed_as_a_damaged_version_and_its_folder_kept()
    {
        await WithHomeAsync(async home =>
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "g", seed: 1);
            ServingFixture.AddRandom(store, "g", seed: 2);
            var metadata = Path.Combine(home, "models", "g", "2", Checkpoint.MetadataFile);
            File.WriteAllText(metadata, "{ \"format\": 1, \"name\": ");

            using var factory = Start(home);
            using var client = factory.CreateClient();
            var models = await client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
            var damaged = Assert.Single(models.GetProperty("damaged").EnumerateArray());
            Assert.Equal(("g", 2), (damaged.GetProperty("name").GetString(), damaged.GetProperty("version").GetInt32()));
            Assert.Contains("not valid checkpoint metadata", damaged.GetProperty("reason").GetString(), StringComparison.Ordinal);
            Assert.Equal(1, models.GetProperty("models")[0].GetProperty("versions").GetArrayLength());

            using (var get = await client.GetAsync(new Uri("/models/g/versions/2", UriKind.Relative)))
            {
                await SecurityApiTests.AssertProblem(get, HttpStatusCode.Conflict);
            }

            Assert.True(File.Exists(Path.Combine(home, "models", "g", "2", "weights.bin")));
        });
    }

    [Fact]
    public async Task An_empty_active_json_is_recovered_from_the_activation_history()
    {
        await WithHomeAsync(async home =>
        {
            using (var first = Start(home))
            {
                using var client = first.CreateClient();
                var store = first.Services.GetRequiredService<ModelStore>();
                ServingFixture.AddRandom(store, "p", seed: 1);
                ServingFixture.AddRandom(store, "p", seed: 2);
                using var activate = await client.PostAsync(new Uri("/models/p/versions/2/activate?force=true", UriKind.Relative), null);
                Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
            }

            File.WriteAllBytes(Path.Combine(home, "models", ActiveModelFile.FileName), []); // a power cut without fsync

            using var factory = Start(home);
            using var again = factory.CreateClient();
            var models = await again.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
            Assert.Equal(2, models.GetProperty("active").GetProperty("version").GetInt32()); // before: "No model version is active"
            var ready = await ReadyAsync(again);
            Assert.Equal("Healthy", ready.GetProperty("checks").GetProperty("model").GetProperty("status").GetString());
            Assert.Contains("recovered p v2", ready.GetProperty("checks").GetProperty("records").GetProperty("description").GetString(), StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task An_empty_active_json_without_history_is_reported_damaged_and_nothing_is_picked_in_its_place()
    {
        await WithHomeAsync(async home =>
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "q", seed: 1);
            ServingFixture.AddRandom(store, "q", seed: 2);
            File.Delete(Path.Combine(home, "models", ActiveModelFile.HistoryFileName)); // a store from before the history
            File.WriteAllBytes(Path.Combine(home, "models", ActiveModelFile.FileName), []);

            using var factory = Start(home);
            using var client = factory.CreateClient();
            var records = (await ReadyAsync(client)).GetProperty("checks").GetProperty("records");
            Assert.Equal("Degraded", records.GetProperty("status").GetString());
            Assert.Contains("pointer is damaged", records.GetProperty("description").GetString(), StringComparison.Ordinal);
            Assert.Contains("empty", records.GetProperty("description").GetString(), StringComparison.Ordinal);
            var models = await client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
            Assert.Equal(2, models.GetProperty("models")[0].GetProperty("versions").GetArrayLength()); // both still there
        });
    }

    [Fact]
    public async Task Temporary_files_left_by_interrupted_writes_are_swept_at_start_and_nothing_else()
    {
        await WithHomeAsync(home =>
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "s", seed: 1);
            var jobDir = Directory.CreateDirectory(Path.Combine(home, "work", "jobs", "0123456789ab")).FullName;
            string[] leftovers =
            [
                Path.Combine(home, "models", "active.json.0f0f.tmp"),
                Path.Combine(home, "models", "s", ".2.claim.tmp"),
                Path.Combine(home, "models", "s", "1", "evaluation.json.1234.tmp"),
                Path.Combine(jobDir, "job.json.5678.tmp"),
            ];
            foreach (var file in leftovers)
            {
                File.WriteAllText(file, "partial");
            }

            var staging = Directory.CreateDirectory(Path.Combine(home, "models", "s", ".3.abcdef.tmp")).FullName;
            File.WriteAllText(Path.Combine(staging, "weights.bin"), "partial");
            var kept = Snapshot(home, f => leftovers.Contains(f) || f.StartsWith(staging, StringComparison.Ordinal));

            using var factory = Start(home);
            _ = factory.Server;
            Assert.All(leftovers, f => Assert.False(File.Exists(f), f));
            Assert.False(Directory.Exists(staging));
            var after = Snapshot(home);
            Assert.All(kept, file => Assert.Equal(file.Value, after.GetValueOrDefault(file.Key))); // the store's own files untouched
            return Task.CompletedTask;
        });
    }
}
