using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The shipped model served by each engine: TorchSharp (<c>Serving:Engine=torch</c>) and ONNX Runtime (the CPU's
/// default, <c>auto</c>), with the same store so both classify the same images.
/// </summary>
public sealed class EnginesFixture : IDisposable
{
    private readonly string home = Directory.CreateTempSubdirectory("nin-engines-").FullName;

    public EnginesFixture()
    {
        var store = new ModelStore(Path.Combine(home, "models"));
        store.Import(Path.Combine(TestPaths.RepoRoot, "Nin.Api", "DefaultModel", "fashion-mnist"), activate: true);
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        ServingFixture.AddRandom(store, "alpha", seed: 2);
        Torch = Create("torch");
        Auto = Create(null);
    }

    public NinApiFactory Torch { get; }

    /// <summary>No engine setting: ONNX Runtime on this CPU.</summary>
    public NinApiFactory Auto { get; }

    public string Models => Path.Combine(home, "models");

    /// <summary>Another service over the same store, with more settings.</summary>
    public NinApiFactory CreateWith(IReadOnlyDictionary<string, string?> more)
    {
        var settings = new Dictionary<string, string?>(more) { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" };
        return new NinApiFactory(settings, home);
    }

    private NinApiFactory Create(string? engine)
    {
        var settings = new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" };
        if (engine is not null)
        {
            settings["Serving:Engine"] = engine;
        }

        return new NinApiFactory(settings, home);
    }

    public void Dispose()
    {
        Torch.Dispose();
        Auto.Dispose();
        try
        {
            Directory.Delete(home, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ServingEngineTests(EnginesFixture fixture) : IClassFixture<EnginesFixture>
{
    private static async Task<PredictResponse> PredictAsync(HttpClient client, string query, params int[] indices)
    {
        using var form = PredictApiTests.Form(indices.Select(PredictApiTests.Png).ToArray());
        using var response = await client.PostAsync(new Uri("/predict" + query, UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("forward;dur=", response.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
        return (await response.Content.ReadFromJsonAsync<PredictResponse>())!;
    }

    [Fact]
    public async Task On_a_cpu_auto_serves_with_onnx_runtime_and_both_engines_give_the_same_answers()
    {
        using var torch = fixture.Torch.CreateClient();
        using var ort = fixture.Auto.CreateClient();
        int[] images = [0, 1, 2, 3, 4, 5, 6, 7];

        var a = await PredictAsync(torch, "?topK=10&invert=false", images);
        var b = await PredictAsync(ort, "?topK=10&invert=false", images);

        Assert.Equal("torch", a.Engine);
        Assert.Equal("onnxruntime", b.Engine);
        Assert.Equal("cpu", b.Device);
        for (var i = 0; i < images.Length; i++)
        {
            var pa = a.Predictions[i].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            var pb = b.Predictions[i].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            Assert.Equal(10, pb.Length);
            var diff = pa.Zip(pb, (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-5, $"image {i}: max |torch - onnxruntime| = {diff}");
            Assert.Equal(a.Predictions[i].Label, b.Predictions[i].Label);
        }

        // The shipped model classifies real test images with either engine.
        Assert.True(b.Predictions.Select((p, i) => p.Index == TestImages.FashionLabel(images[i])).Count(x => x) >= 6);

        // The ONNX file was built from the version on load and kept beside it.
        var cached = Directory.GetFiles(Path.Combine(fixture.Models, "fashion-mnist", "1"), "model.*.onnx");
        Assert.Single(cached);
    }

    [Fact]
    public void An_unknown_engine_stops_the_service_at_start_naming_the_setting()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["Serving:Engine"] = "tensorrt" });
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        Assert.Contains("Serving:Engine", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_live_names_the_engine()
    {
        using var torch = fixture.Torch.CreateClient();
        using var ort = fixture.Auto.CreateClient();
        Assert.Equal("torch", (await torch.GetFromJsonAsync<JsonElement>(new Uri("/health/live", UriKind.Relative))).GetProperty("engine").GetString());
        Assert.Equal("onnxruntime", (await ort.GetFromJsonAsync<JsonElement>(new Uri("/health/live", UriKind.Relative))).GetProperty("engine").GetString());
    }

    [Theory]
    [InlineData("torch")]
    [InlineData("onnxruntime")]
    public async Task Concurrent_requests_are_batched_and_answer_as_single_requests_do(string engineName)
    {
        var factory = engineName == "torch" ? fixture.Torch : fixture.Auto;
        using var client = factory.CreateClient();
        var engine = factory.Services.GetRequiredService<InferenceEngine>();
        var single = await PredictAsync(client, "?topK=10&invert=false", 3);

        var responses = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => PredictAsync(client, "?topK=10&invert=false", 3)));

        Assert.All(responses, r => Assert.Equal(engineName, r.Engine));
        var expected = single.Predictions[0].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
        Assert.All(responses, r =>
        {
            var got = r.Predictions[0].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            Assert.True(expected.Zip(got, (x, y) => Math.Abs(x - y)).Max() <= 1e-5);
        });
        Assert.True(engine.Stats.LargestBatch > 1, $"{engineName}: no forward pass served more than one request");
        Assert.True(engine.Stats.LargestBatch <= engine.MaxBatchSize);
    }

    [Fact]
    public async Task A_lone_request_on_an_idle_onnx_runtime_engine_runs_on_its_own_thread_and_torch_keeps_its_workers()
    {
        using var ort = fixture.Auto.CreateClient();
        using var torch = fixture.Torch.CreateClient();
        var ortEngine = fixture.Auto.Services.GetRequiredService<InferenceEngine>();
        var torchEngine = fixture.Torch.Services.GetRequiredService<InferenceEngine>();
        var expected = (await PredictAsync(torch, "?topK=10&invert=false", 5)).Predictions[0].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
        long ortBefore = ortEngine.Stats.InlinePasses, torchBefore = torchEngine.Stats.InlinePasses;

        // One request at a time: each finds the engine idle. (Other tests of this class may run passes meanwhile, so
        // not every one need run inline; most do.)
        for (var i = 0; i < 6; i++)
        {
            var got = (await PredictAsync(ort, "?topK=10&invert=false", 5)).Predictions[0].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            Assert.True(expected.Zip(got, (x, y) => Math.Abs(x - y)).Max() <= 1e-5);
            _ = await PredictAsync(torch, "?topK=10&invert=false", 5);
        }

        Assert.True(ortEngine.Stats.InlinePasses - ortBefore >= 3, $"only {ortEngine.Stats.InlinePasses - ortBefore} of 6 lone ONNX Runtime passes ran inline");
        Assert.Equal(torchBefore, torchEngine.Stats.InlinePasses); // libtorch's passes stay on the workers' own threads

        // Switched off, a lone request goes through worker 0 as before.
        using var off = fixture.CreateWith(new Dictionary<string, string?> { ["Serving:Engine"] = "onnxruntime", ["Serving:IdlePassesInline"] = "false" });
        using var offClient = off.CreateClient();
        var offEngine = off.Services.GetRequiredService<InferenceEngine>();
        for (var i = 0; i < 3; i++)
        {
            _ = await PredictAsync(offClient, "?topK=10&invert=false", 5);
        }

        Assert.Equal(0, offEngine.Stats.InlinePasses);
        Assert.True(offEngine.Stats.ForwardPasses >= 3);
    }

    [Theory]
    [InlineData("torch")]
    [InlineData("onnxruntime")]
    public async Task Activating_another_version_under_load_fails_no_request(string engineName)
    {
        var factory = engineName == "torch" ? fixture.Torch : fixture.Auto;
        using var client = factory.CreateClient();
        var failures = new ConcurrentBag<string>();
        var versions = new ConcurrentBag<int>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var form = PredictApiTests.Form(PredictApiTests.Png(7));
                using var r = await client.PostAsync(new Uri("/predict?model=alpha", UriKind.Relative), form);
                if (r.StatusCode != HttpStatusCode.OK)
                {
                    failures.Add($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                }
                else
                {
                    var body = (await r.Content.ReadFromJsonAsync<PredictResponse>())!;
                    Assert.Equal(engineName, body.Engine);
                    versions.Add(body.Model.Version);
                }
            }
        }).ToArray();

        try
        {
            for (var i = 0; i < 4; i++)
            {
                await Task.Delay(200);
                using var activate = await client.PostAsync(new Uri($"/models/alpha/versions/{(i % 2) + 1}/activate?force=true", UriKind.Relative), null);
                Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
            }

            await Task.Delay(300);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
            using var restore = await client.PostAsync(new Uri("/models/fashion-mnist/versions/1/activate?force=true", UriKind.Relative), null);
        }

        Assert.Empty(failures);
        Assert.Contains(1, versions);
        Assert.Contains(2, versions);
    }
}
