using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Sweeps;
using Nin.Api.Training;
using Xunit.Abstractions;
using static Nin.Api.Tests.Api.TrainingApiTests;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// A sweep across real processes: an <c>api</c> and two <c>worker</c>s sharing one home folder and PostgreSQL. Its trials
/// spread over both workers; kill -9 of one worker in the middle of a trial loses nothing: the trial resumes from its
/// checkpoint on the other, and the api ends the sweep and names the best once every trial has ended.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class SweepClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Invisibility = TimeSpan.FromSeconds(10);

    private static Dictionary<string, string?> Settings(string home, string schema, string role) => new()
    {
        ["Nin:Home"] = home,
        ["Nin:Role"] = role,
        ["Nin:SeedDefaultModel"] = "false",
        ["Hangfire:PostgresConnection"] = TestServers.Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["Hangfire:InvisibilityTimeout"] = Invisibility.ToString(),
        ["SharedState:Schema"] = schema + "_nin",
        ["Serving:ThreadsPerPass"] = "1",
        ["Torch:Threads"] = "1", // two workers on two cores
    };

    [Fact]
    public async Task A_sweeps_trials_spread_over_the_workers_and_survive_kill_minus_9_of_one()
    {
        var home = Directory.CreateTempSubdirectory("nin-sweep-cluster-").FullName;
        var schema = TestServers.NewSchema("nin_sweep");
        var processes = new List<NinProcess>();
        try
        {
            var api = NinProcess.Start(Settings(home, schema, "api"), "api", output);
            var one = NinProcess.Start(Settings(home, schema, "worker"), "worker-1", output);
            var two = NinProcess.Start(Settings(home, schema, "worker"), "worker-2", output);
            processes.AddRange([api, one, two]);
            await Task.WhenAll(api.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)), one.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)), two.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2)));

            using var response = await api.Client.PostAsJsonAsync(new Uri("/sweeps", UriKind.Relative), new
            {
                @base = new { recipe = "robust", epochs = 3, batchSize = 32, imageSize = 67, maxTrainImages = 384, maxTestImages = 64, modelName = "swept", seed = 2 },
                space = new { learningRate = new { values = new[] { 0.05, 0.1, 0.2, 0.4 } } },
                earlyStopping = new { rule = "none" },
            });
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
            var sweep = (await response.Content.ReadFromJsonAsync<SweepSnapshot>(Json))!;

            // Both workers take a trial; kill -9 the first one's in the middle of its second epoch.
            var running = await WaitForSweepAsync(api, sweep.SweepId, async s =>
            {
                var jobs = await Task.WhenAll(s.Trials.Select(t => api.Client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{t.JobId}", UriKind.Relative), Json)));
                return jobs.Any(j => j!.Status == JobStatus.Running && j.Worker?.Contains($":{one.Pid}:", StringComparison.Ordinal) == true && j.Epochs.Count >= 1 && j.Progress.Batch > 0)
                    && jobs.Any(j => j!.Worker?.Contains($":{two.Pid}:", StringComparison.Ordinal) == true);
            }, TimeSpan.FromMinutes(4));
            var victim = (await Task.WhenAll(running.Trials.Select(t => api.Client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{t.JobId}", UriKind.Relative), Json))))
                .First(j => j!.Status == JobStatus.Running && j.Worker!.Contains($":{one.Pid}:", StringComparison.Ordinal))!;
            one.KillHard();
            output.WriteLine($"killed worker-1 during trial {victim.Request.Trial} ({victim.JobId}) after {victim.Epochs.Count} epoch(s)");

            var done = await WaitForSweepAsync(api, sweep.SweepId, s => Task.FromResult(s.Status != SweepStatus.Running), Invisibility + TimeSpan.FromMinutes(6));
            var text = JsonSerializer.Serialize(done, Json);
            Assert.True(done.Status == SweepStatus.Succeeded, $"{text}\n{two.Describe()}");
            Assert.All(done.Trials, t => Assert.Equal((JobStatus.Succeeded, 3), (t.Status!.Value, t.EpochsCompleted)));
            var resumed = await api.Client.GetFromJsonAsync<JobSnapshot>(new Uri($"/train/{victim.JobId}", UriKind.Relative), Json);
            Assert.True(resumed!.ResumedAfterEpoch >= 1, JsonSerializer.Serialize(resumed, Json));
            Assert.Contains($":{two.Pid}:", resumed.Worker, StringComparison.Ordinal);
            Assert.Equal(done.Trials.MaxBy(t => t.Metric)!.Metric, done.Best!.Metric);
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

    private static async Task<SweepSnapshot> WaitForSweepAsync(NinProcess api, string sweepId, Func<SweepSnapshot, Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var sweep = (await api.Client.GetFromJsonAsync<SweepSnapshot>(new Uri($"/sweeps/{sweepId}", UriKind.Relative), Json))!;
            if (await condition(sweep))
            {
                return sweep;
            }

            Assert.True(DateTime.UtcNow < deadline, $"sweep {sweepId} did not get there in {timeout.TotalSeconds:F0} s: {JsonSerializer.Serialize(sweep, Json)}\n{api.Describe()}");
            await Task.Delay(500);
        }
    }
}
