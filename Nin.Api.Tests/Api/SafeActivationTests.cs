using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Activation loads and warms a version before the active pointer moves: a version whose files are damaged is refused
/// with its cause while clients loop /predict, and not one of their requests fails; healthy swaps under the same load
/// lose nothing either, and a damaged cached ONNX export is rebuilt from the checkpoint.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class SafeActivationTests : IDisposable
{
    private readonly string home = Directory.CreateTempSubdirectory("nin-activate-").FullName;
    private readonly NinApiFactory factory;
    private readonly ModelStore store;

    public SafeActivationTests()
    {
        store = new ModelStore(Path.Combine(home, "models"));
        for (var seed = 1; seed <= 5; seed++)
        {
            ServingFixture.AddRandom(store, "alpha", seed);
        }

        store.Activate("alpha", 1);
        // v2: weights overwritten in place (their SHA-256 no longer matches); v3: weights emptied; v4: healthy;
        // v5: healthy weights, but its cached ONNX export is garbage.
        Damage(Path.Combine(store.Find("alpha", 2)!.Directory, "weights.bin"), truncate: false);
        Damage(Path.Combine(store.Find("alpha", 3)!.Directory, "weights.bin"), truncate: true);
        var onnx = OnnxCache.Ensure(store.Find("alpha", 5)!.Directory);
        File.WriteAllBytes(onnx, [.. "not an ONNX model"u8]);
        factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["RateLimiting:Enabled"] = "false",
            ["Serving:LoadRetryMaxSeconds"] = "2",
        }, home);
    }

    public void Dispose()
    {
        factory.Dispose();
        try
        {
            Directory.Delete(home, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    internal static void Damage(string path, bool truncate)
    {
        if (truncate)
        {
            File.WriteAllBytes(path, []);
            return;
        }

        var bytes = File.ReadAllBytes(path);
        for (var i = bytes.Length / 3; i < bytes.Length / 3 + 64; i++)
        {
            bytes[i] ^= 0x5A;
        }

        File.WriteAllBytes(path, bytes);
    }

    [Fact]
    public async Task Damaged_versions_are_refused_with_their_cause_while_clients_loop_predict_and_no_request_fails()
    {
        using var admin = factory.CreateClient();
        Assert.Equal(1, (await PredictAsync(admin)).Version);

        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(_ => LoopAsync(factory.CreateClient(), stop.Token)).ToArray();
        await Task.Delay(300);

        foreach (var (version, cause) in new[] { (2, "SHA-256"), (3, "weights") })
        {
            using var refused = await admin.PostAsync(new Uri($"/models/alpha/versions/{version}/activate?force=true", UriKind.Relative), null);
            var problem = await refused.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(refused.StatusCode == HttpStatusCode.UnprocessableEntity, $"{refused.StatusCode}: {problem}");
            var detail = problem.GetProperty("detail").GetString()!;
            Assert.Contains(cause, detail, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("alpha version 1 stays active", detail, StringComparison.Ordinal);
            Assert.DoesNotContain(home, detail, StringComparison.Ordinal); // the cause, not the server's folders
            Assert.Equal(new ActiveModel("alpha", 1), store.Active);
        }

        // Healthy swaps under the same load: each answers once the version serves.
        foreach (var version in new[] { 4, 5, 1 })
        {
            using var activated = await admin.PostAsync(new Uri($"/models/alpha/versions/{version}/activate?force=true", UriKind.Relative), null);
            Assert.True(activated.StatusCode == HttpStatusCode.OK, await activated.Content.ReadAsStringAsync());
            Assert.Equal(version, (await PredictAsync(admin)).Version);
            await Task.Delay(200);
        }

        await stop.CancelAsync();
        var results = (await Task.WhenAll(clients)).SelectMany(r => r).ToArray();
        var failed = results.Where(r => r.Status != HttpStatusCode.OK).ToArray();
        Assert.True(results.Length > 20, $"only {results.Length} requests were made");
        Assert.True(failed.Length == 0, $"{failed.Length} of {results.Length} requests failed: {string.Join("; ", failed.Take(5).Select(f => $"{f.Status} {f.Body}"))}");
        Assert.DoesNotContain(results, r => r.Version is 2 or 3);
        Assert.Contains(results, r => r.Version == 4);

        // The damaged cached export was made again from the checkpoint, and readiness is plain ready.
        Assert.True(new FileInfo(OnnxCache.Ensure(store.Find("alpha", 5)!.Directory)).Length > 1000, "the damaged ONNX export was not rebuilt");
        using var ready = await admin.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task A_damaged_active_version_is_retried_with_back_off_not_per_request_and_readiness_says_why()
    {
        // The pointer moved behind the registry's back (as another replica's activation looks to this one).
        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        using var client = factory.CreateClient();
        Assert.Equal(1, (await PredictAsync(client)).Version);
        store.Activate("alpha", 2);

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(1, (await PredictAsync(client)).Version); // the old version serves
        }

        var failure = registry.Status.Failure;
        for (var i = 0; i < 50 && failure is null; i++)
        {
            await Task.Delay(100);
            failure = registry.Status.Failure;
        }

        Assert.NotNull(failure);
        Assert.True(failure.Attempts <= 3, $"{failure.Attempts} load attempts for 20 requests: loads must wait for their back-off, not follow requests");
        using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode); // degraded, still serving
        Assert.Equal("Degraded", body.GetProperty("checks").GetProperty("model").GetProperty("status").GetString());
        Assert.Contains("alpha v2 cannot be loaded", body.GetProperty("checks").GetProperty("model").GetProperty("description").GetString(), StringComparison.Ordinal);

        // Mended, the next retry serves it.
        var good = store.Find("alpha", 4)!.Directory;
        var bad = store.Find("alpha", 2)!.Directory;
        foreach (var file in new[] { "weights.bin", "model.json" })
        {
            File.Copy(Path.Combine(good, file), Path.Combine(bad, file), overwrite: true);
        }

        var metadata = Checkpoint.ReadMetadata(bad);
        File.WriteAllText(Path.Combine(bad, "model.json"), JsonSerializer.Serialize(metadata with { Version = 2 }, ModelMetadata.JsonOptions));
        var served = 1;
        for (var i = 0; i < 100 && served != 2; i++)
        {
            await Task.Delay(100);
            served = (await PredictAsync(client)).Version!.Value;
        }

        Assert.Equal(2, served);
    }

    internal sealed record Answer(HttpStatusCode Status, int? Version, string Body);

    internal static async Task<Answer> PredictOnceAsync(HttpClient client, CancellationToken cancellationToken = default)
    {
        using var form = PredictApiTests.Form(PredictApiTests.Png(0));
        using var response = await client.PostAsync(new Uri("/predict", UriKind.Relative), form, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        int? version = response.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement.GetProperty("model").GetProperty("version").GetInt32() : null;
        return new Answer(response.StatusCode, version, body);
    }

    private static async Task<Answer> PredictAsync(HttpClient client)
    {
        var answer = await PredictOnceAsync(client);
        Assert.True(answer.Status == HttpStatusCode.OK, answer.Body);
        return answer;
    }

    internal static async Task<List<Answer>> LoopAsync(HttpClient client, CancellationToken stop)
    {
        var answers = new List<Answer>();
        using (client)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    answers.Add(await PredictOnceAsync(client, CancellationToken.None));
                }
                catch (HttpRequestException ex)
                {
                    answers.Add(new Answer(0, null, ex.Message));
                }
            }
        }

        return answers;
    }
}
