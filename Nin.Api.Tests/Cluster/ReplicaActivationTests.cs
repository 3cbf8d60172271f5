using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Tests.Api;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// Safe activation across two <c>api</c> replicas sharing PostgreSQL (the active model, LISTEN/NOTIFY) and one store,
/// with clients looping /predict on both: a damaged version is refused on either replica with its cause and neither
/// stops serving; a version that loads on the replica that activates it but not on the other (ONNX Runtime there, whose
/// export was made before the weights were damaged; TorchSharp here, which reads the damaged weights) leaves the other
/// serving the old version, degraded in readiness with the cause, and loading it on a back-off retry once mended.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class ReplicaActivationTests(ITestOutputHelper output)
{
    private static Dictionary<string, string?> Settings(string home, string schema, string engine) => new()
    {
        ["Nin:Home"] = home,
        ["Nin:Role"] = "api",
        ["Nin:SeedDefaultModel"] = "false",
        ["Hangfire:PostgresConnection"] = TestServers.Postgres,
        ["Hangfire:PostgresSchema"] = schema,
        ["SharedState:Schema"] = schema + "_nin",
        ["Serving:ThreadsPerPass"] = "1",
        ["Serving:Engine"] = engine,
        ["Serving:LoadRetryMaxSeconds"] = "2",
        ["RateLimiting:Enabled"] = "false",
    };

    [Fact]
    public async Task Damaged_versions_never_stop_either_replica_and_one_that_loads_only_on_one_leaves_the_other_degraded_until_mended()
    {
        var home = Directory.CreateTempSubdirectory("nin-replicas-").FullName;
        var schema = TestServers.NewSchema("nin_replicas");
        var store = new ModelStore(Path.Combine(home, "models"));
        for (var seed = 1; seed <= 3; seed++)
        {
            ServingFixture.AddRandom(store, "alpha", seed);
        }

        store.Activate("alpha", 1);
        SafeActivationTests.Damage(Path.Combine(store.Find("alpha", 2)!.Directory, "weights.bin"), truncate: false);
        // v3: its ONNX export is made while the weights are sound, then the weights are damaged (kept for mending).
        var v3 = store.Find("alpha", 3)!.Directory;
        OnnxCache.Ensure(v3);
        var sound = File.ReadAllBytes(Path.Combine(v3, "weights.bin"));
        SafeActivationTests.Damage(Path.Combine(v3, "weights.bin"), truncate: false);

        var a = NinProcess.Start(Settings(home, schema, "onnxruntime"), "api-a", output);
        var b = NinProcess.Start(Settings(home, schema, "torch"), "api-b", output);
        try
        {
            await Task.WhenAll(a.WaitReadyAsync("/health/ready", TimeSpan.FromMinutes(2)), b.WaitReadyAsync("/health/ready", TimeSpan.FromMinutes(2)));
            using var stop = new CancellationTokenSource();
            var loops = new[] { a, b }.SelectMany(p => Enumerable.Range(0, 2).Select(_ =>
                SafeActivationTests.LoopAsync(new HttpClient { BaseAddress = p.BaseAddress, Timeout = TimeSpan.FromSeconds(60) }, stop.Token))).ToArray();
            await Task.Delay(500);

            // 1. The damaged v2, activated on either replica: refused with its cause; v1 stays active everywhere.
            foreach (var replica in new[] { a, b })
            {
                using var refused = await replica.Client.PostAsync(new Uri("/models/alpha/versions/2/activate?force=true", UriKind.Relative), null);
                var problem = await refused.Content.ReadAsStringAsync();
                Assert.True(refused.StatusCode == HttpStatusCode.UnprocessableEntity, $"{replica.Name}: {refused.StatusCode} {problem}\n{replica.Describe()}");
                Assert.Contains("SHA-256", problem, StringComparison.Ordinal);
            }

            // 2. v3 activated on A (ONNX Runtime loads its export): A serves it; B cannot load it and keeps serving v1.
            using (var activated = await a.Client.PostAsync(new Uri("/models/alpha/versions/3/activate?force=true", UriKind.Relative), null))
            {
                Assert.True(activated.StatusCode == HttpStatusCode.OK, $"{await activated.Content.ReadAsStringAsync()}\n{a.Describe()}");
            }

            Assert.Equal(3, await ServedVersionAsync(a));
            string? degraded = null;
            for (var i = 0; i < 50 && degraded is null; i++)
            {
                await Task.Delay(200);
                var ready = await b.Client.GetFromJsonAsync<JsonElement>(new Uri("/health/ready", UriKind.Relative));
                var model = ready.GetProperty("checks").GetProperty("model");
                degraded = model.GetProperty("status").GetString() == "Degraded" ? model.GetProperty("description").GetString() : null;
            }

            output.WriteLine($"B's readiness: {degraded}");
            Assert.NotNull(degraded);
            Assert.Contains("alpha v3 cannot be loaded", degraded, StringComparison.Ordinal);
            Assert.Contains("Serving alpha v1", degraded, StringComparison.Ordinal);
            Assert.Equal(1, await ServedVersionAsync(b));
            using (var readyB = await b.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.OK, readyB.StatusCode); // degraded, not down: it serves
            }

            // 3. Mended: B's next retry (back-off of at most 2 s here) loads it.
            File.WriteAllBytes(Path.Combine(v3, "weights.bin"), sound);
            var served = 1;
            for (var i = 0; i < 60 && served != 3; i++)
            {
                await Task.Delay(200);
                served = await ServedVersionAsync(b);
            }

            Assert.Equal(3, served);
            await stop.CancelAsync();
            var answers = (await Task.WhenAll(loops)).SelectMany(l => l).ToArray();
            var failed = answers.Where(r => r.Status != HttpStatusCode.OK).ToArray();
            output.WriteLine($"{answers.Length} /predict requests on the two replicas meanwhile, {failed.Length} failed");
            Assert.True(answers.Length > 20, $"only {answers.Length} requests");
            Assert.True(failed.Length == 0, $"{failed.Length} of {answers.Length} failed: {string.Join("; ", failed.Take(5).Select(f => $"{f.Status} {f.Body}"))}");
            Assert.DoesNotContain(answers, r => r.Version == 2);
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
            Directory.Delete(home, recursive: true);
        }
    }

    private static async Task<int> ServedVersionAsync(NinProcess replica)
    {
        var answer = await SafeActivationTests.PredictOnceAsync(replica.Client);
        Assert.True(answer.Status == HttpStatusCode.OK, $"{replica.Name}: {answer.Status} {answer.Body}");
        return answer.Version!.Value;
    }
}
