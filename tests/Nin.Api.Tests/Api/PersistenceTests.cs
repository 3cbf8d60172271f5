using System.Net;
using System.Net.Http.Json;
using Nin.Api.Training;
using static Nin.Api.Tests.Api.TrainingApiTests;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The configuration the container uses: Hangfire on a real PostgreSQL server (NIN_TEST_POSTGRES, which
/// .ci/run provides) and files under one NIN home. Jobs survive a restart of the service.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class PersistenceTests
{
    private static string Postgres =>
        Environment.GetEnvironmentVariable("NIN_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                "NIN_TEST_POSTGRES is not set. These tests need a PostgreSQL server: .ci/run starts one; locally, set NIN_TEST_POSTGRES to a connection string such as Host=127.0.0.1;Username=nin;Password=nin;Database=nin_test.");

    private static NinApiFactory Start(string home, string schema) => new(new Dictionary<string, string?>
    {
        ["Hangfire:PostgresConnection"] = Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["Nin:SeedDefaultModel"] = "false",
    }, home);

    [Fact]
    public async Task Queued_and_running_jobs_survive_a_restart_and_the_interrupted_one_resumes()
    {
        var home = Directory.CreateTempSubdirectory("nin-pg-").FullName;
        var schema = "nin_test_" + Guid.NewGuid().ToString("N")[..8];
        string first, second;
        EpochMetricsSnapshot before;

        var factory = Start(home, schema);
        using (var client = factory.CreateClient())
        {
            first = await StartAsync(client, new { epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 384, maxTestImages = 64, modelName = "survivor", seed = 5 });
            second = await StartAsync(client, new { epochs = 1, batchSize = 32, imageSize = 67, maxTrainImages = 64, maxTestImages = 32, modelName = "second" });
            var running = await WaitForAsync(client, first, j => j.Epochs.Count >= 1 && j.Status == JobStatus.Running && j.Progress.Epoch >= 2, TimeSpan.FromMinutes(3));
            before = new EpochMetricsSnapshot(running.Epochs[0].TrainLoss, running.Epochs[0].Seconds);
        }

        // Stop the service mid-epoch: Hangfire cancels the job, which stays queued with its checkpoint.
        factory.Dispose();
        Assert.True(Directory.Exists(home), "the service's files must outlive it");

        using var restarted = Start(home, schema);
        using (var client = restarted.CreateClient())
        {
            var resumed = await WaitForAsync(client, first, j => j.Status is JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromMinutes(4));
            Assert.Equal(JobStatus.Succeeded, resumed.Status);
            Assert.Equal([1, 2, 3], resumed.Epochs.Select(e => e.Epoch));
            Assert.True(resumed.ResumedAfterEpoch >= 1, "the job should have resumed from an epoch checkpoint");
            // Epoch 1 was not rerun: its figures are the ones recorded before the restart.
            Assert.Equal(before, new EpochMetricsSnapshot(resumed.Epochs[0].TrainLoss, resumed.Epochs[0].Seconds));

            var next = await WaitForAsync(client, second, j => j.Status is JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromMinutes(2));
            Assert.Equal(JobStatus.Succeeded, next.Status);

            using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            var models = await client.GetStringAsync(new Uri("/models", UriKind.Relative));
            Assert.Contains("survivor", models, StringComparison.Ordinal);
        }
    }

    private sealed record EpochMetricsSnapshot(double Loss, double Seconds);

    private static async Task<string> StartAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), body);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
    }
}
