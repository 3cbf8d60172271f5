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
[ClusterTests]
public sealed class PersistenceTests
{
    private static string Postgres => Cluster.TestServers.Postgres;

    private static NinApiFactory Start(string home, string schema) => new(new Dictionary<string, string?>
    {
        ["Hangfire:PostgresConnection"] = Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["SharedState:Schema"] = schema + "_nin",
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
            // The robust recipe learns in these few epochs, so its model is activated and readiness has a model to report.
            first = await StartAsync(client, new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 1536, maxTestImages = 64, modelName = "survivor", seed = 5 });
            second = await StartAsync(client, new { epochs = 1, batchSize = 32, imageSize = 67, maxTrainImages = 64, maxTestImages = 32, modelName = "second" });
            // Stop early in epoch 2 (an epoch is 48 batches), so the restart interrupts it mid-epoch.
            var running = await WaitForAsync(client, first, j => j.Epochs.Count >= 1 && j.Status == JobStatus.Running && j.Progress.Epoch == 2, TimeSpan.FromMinutes(3));
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

    [Fact]
    public async Task Ready_is_503_naming_the_job_storage_while_the_database_is_down_and_200_when_it_is_back()
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(Postgres);
        await using var proxy = await TcpProxy.ToAsync(builder.Host!, builder.Port);
        builder.Host = "127.0.0.1";
        builder.Port = proxy.Port;
        builder.Pooling = false;
        builder.Timeout = 3;

        var home = Directory.CreateTempSubdirectory("nin-pgready-").FullName;
        var store = new Nin.Model.Checkpoints.ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "ready", seed: 1); // active.json: read into PostgreSQL on first start
        var schema = "nin_test_" + Guid.NewGuid().ToString("N")[..8];
        using var factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Hangfire:PostgresConnection"] = builder.ConnectionString,
            ["Hangfire:PostgresSchema"] = schema,
            ["SharedState:Schema"] = schema + "_nin",
            ["Nin:SeedDefaultModel"] = "false",
        }, home);
        using var client = factory.CreateClient();
        using (var up = await client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, up.StatusCode);
        }

        proxy.Stop();
        using (var down = await client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            var body = await down.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            var storage = body.GetProperty("checks").GetProperty("jobStorage");
            Assert.Equal("Unhealthy", storage.GetProperty("status").GetString());
            Assert.Contains("not reachable", storage.GetProperty("description").GetString(), StringComparison.Ordinal);
            Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("model").GetProperty("status").GetString());
        }

        // Job records live in PostgreSQL now: reading them while it is down is a 503 to retry, not a 500.
        using (var jobs = await client.GetAsync(new Uri("/train", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, jobs.StatusCode);
            Assert.Equal("application/problem+json", jobs.Content.Headers.ContentType?.MediaType);
            Assert.Contains("job storage", await jobs.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The service itself kept working, and is ready again once the database is back.
        using (var live = await client.GetAsync(new Uri("/health/live", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        proxy.Start();
        using var again = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    [Fact]
    public async Task A_job_whose_database_goes_away_mid_epoch_resumes_from_its_checkpoint_when_it_is_back()
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(Postgres);
        await using var proxy = await TcpProxy.ToAsync(builder.Host!, builder.Port);
        builder.Host = "127.0.0.1";
        builder.Port = proxy.Port;
        builder.Timeout = 3;
        var home = Directory.CreateTempSubdirectory("nin-pgblip-").FullName;
        var schema = "nin_test_" + Guid.NewGuid().ToString("N")[..8];
        using var factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Hangfire:PostgresConnection"] = builder.ConnectionString,
            ["Hangfire:PostgresSchema"] = schema,
            ["Hangfire:InvisibilityTimeout"] = "00:00:10",
            ["SharedState:Schema"] = schema + "_nin",
            ["Nin:SeedDefaultModel"] = "false",
        }, home, ownsHome: true);
        using var client = factory.CreateClient();

        var job = await StartAsync(client, new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 1536, maxTestImages = 64, modelName = "blip", seed = 5 });
        var before = await WaitForAsync(client, job, j => j.Epochs.Count >= 1 && j.Status == JobStatus.Running && j.Progress.Epoch == 2, TimeSpan.FromMinutes(3));

        // PostgreSQL away for a few seconds mid-epoch: the run cannot record its progress, so it stops without
        // being marked failed; Hangfire retries it once the database answers and it resumes from epoch 1's checkpoint.
        proxy.Stop();
        using (var during = await client.GetAsync(new Uri($"/train/{job}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        }

        await Task.Delay(TimeSpan.FromSeconds(4));
        proxy.Start();

        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        JobSnapshot? done = null;
        while (DateTime.UtcNow < deadline)
        {
            using var response = await client.GetAsync(new Uri($"/train/{job}", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                done = await response.Content.ReadFromJsonAsync<JobSnapshot>(Json);
                if (done!.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled)
                {
                    break;
                }
            }

            await Task.Delay(250);
        }

        Assert.True(done?.Status == JobStatus.Succeeded, $"the job ended {done?.Status}: {done?.Error}");
        Assert.Equal([1, 2, 3], done!.Epochs.Select(e => e.Epoch));
        Assert.True(done.ResumedAfterEpoch >= 1, "the retried run should resume from the epoch checkpoint");
        Assert.Equal(new EpochMetricsSnapshot(before.Epochs[0].TrainLoss, before.Epochs[0].Seconds), new EpochMetricsSnapshot(done.Epochs[0].TrainLoss, done.Epochs[0].Seconds));
    }

    private sealed record EpochMetricsSnapshot(double Loss, double Seconds);

    private static async Task<string> StartAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), body);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
    }
}
