using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>Job records, readiness reasons and listings carry no server paths and no raw exception text.</summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class ClientErrorTests
{
    [Fact]
    public async Task A_failed_job_s_error_names_folders_by_role_not_by_path()
    {
        var home = Directory.CreateTempSubdirectory("nin-errors-").FullName;
        try
        {
            var emptyData = Directory.CreateDirectory(Path.Combine(home, "no-datasets-here")).FullName;
            using var factory = new NinApiFactory(new Dictionary<string, string?>
            {
                ["Nin:SeedDefaultModel"] = "false",
                ["Nin:DataDirectory"] = emptyData,
                ["Nin:DownloadDatasets"] = "false",
            }, home);
            using var client = factory.CreateClient();
            using var train = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { epochs = 1, imageSize = 67, batchSize = 8, maxTrainImages = 8, maxTestImages = 8 });
            Assert.Equal(HttpStatusCode.Accepted, train.StatusCode);
            var accepted = (await train.Content.ReadFromJsonAsync<TrainAccepted>(TrainingApiTests.Json))!;
            var done = await TrainingApiTests.WaitForAsync(client, accepted.JobId, j => j.Status is JobStatus.Failed or JobStatus.Succeeded, TimeSpan.FromMinutes(1));

            Assert.Equal(JobStatus.Failed, done.Status);
            Assert.DoesNotContain(home, done.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("/tmp/", done.Error, StringComparison.Ordinal);
            Assert.Contains("{data}/fashion-mnist", done.Error, StringComparison.Ordinal); // still says where to put the files
            Assert.Contains("train-images-idx3-ubyte", done.Error, StringComparison.Ordinal);
            var listed = await client.GetStringAsync(new Uri("/train", UriKind.Relative));
            Assert.DoesNotContain(home, listed, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Readiness_reasons_and_dataset_locations_carry_no_server_paths()
    {
        var home = Directory.CreateTempSubdirectory("nin-ready-").FullName;
        try
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "alpha", seed: 1);
            store.Activate("alpha", 1);
            File.WriteAllBytes(Path.Combine(store.Find("alpha", 1)!.Directory, "weights.bin"), [1, 2, 3]); // corrupt: the check says why, with a path
            using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" }, home);
            using var client = factory.CreateClient();

            using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var body = await ready.Content.ReadAsStringAsync();
            var model = JsonDocument.Parse(body).RootElement.GetProperty("checks").GetProperty("model").GetProperty("description").GetString();
            Assert.Contains("{models}/alpha/1", model, StringComparison.Ordinal);
            Assert.DoesNotContain(home, body, StringComparison.Ordinal);

            var datasets = await client.GetFromJsonAsync<JsonElement>(new Uri("/datasets", UriKind.Relative));
            foreach (var dataset in datasets.EnumerateArray())
            {
                var location = dataset.GetProperty("location").GetString()!;
                Assert.False(Path.IsPathRooted(location), location);
                Assert.DoesNotContain(TestPaths.SharedDatasets, location, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Theory]
    [InlineData("Could not open '/srv/nin/models/a/1/weights.bin': denied", "Could not open '…': denied")]
    [InlineData(@"Could not open 'C:\nin\models\a' now", "Could not open '…' now")]
    [InlineData("see https://example.com/a/b and uploads/u-1 and 1/2/3", "see https://example.com/a/b and uploads/u-1 and 1/2/3")]
    public void Absolute_paths_are_elided(string text, string expected) => Assert.Equal(expected, ClientErrors.Scrub(text));

    [Fact]
    public void Exceptions_that_are_not_the_service_s_own_messages_give_only_their_kind()
    {
        var described = ClientErrors.Describe(new NullReferenceException("Object reference not set at /work/secret/file.cs:42"));
        Assert.Equal("The job failed (NullReferenceException); the service's log has the details.", described);
    }
}
