using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Models;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Canary and shadow traffic (<c>/models/{name}/traffic</c>) on two replicas sharing one store folder: a 90/10 split
/// measured over 1,000 requests, the same keyed split on both replicas, a change reaching the other replica within about
/// a second, and a shadow whose answers never reach a client but whose agreement is counted.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class TrafficApiTests : IDisposable
{
    private readonly string home = Directory.CreateTempSubdirectory("nin-traffic-").FullName;
    private readonly NinApiFactory a;
    private readonly NinApiFactory b;

    public TrafficApiTests()
    {
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        ServingFixture.AddRandom(store, "alpha", seed: 2);
        store.Activate("alpha", 1);
        var settings = new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" };
        a = new NinApiFactory(settings, home);
        b = new NinApiFactory(settings, home);
    }

    public void Dispose()
    {
        a.Dispose();
        b.Dispose();
        try
        {
            Directory.Delete(home, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<int> PredictAsync(HttpClient client, string? key = null, string query = "")
    {
        using var form = PredictApiTests.Form(PredictApiTests.Png(3));
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/predict" + query, UriKind.Relative)) { Content = form };
        if (key is not null)
        {
            request.Headers.Add(TrafficRouter.KeyHeader, key);
        }

        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<PredictResponse>())!.Model.Version;
    }

    private static async Task<TrafficResponse> PutAsync(HttpClient client, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await client.PutAsJsonAsync(new Uri("/models/alpha/traffic", UriKind.Relative), body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, text);
        return expected == HttpStatusCode.OK ? JsonSerializer.Deserialize<TrafficResponse>(text, JsonSerializerOptions.Web)! : null!;
    }

    [Fact]
    public async Task A_90_10_split_over_1000_requests_lands_within_3_points_and_keyed_requests_split_alike_on_both_replicas()
    {
        using var ca = a.CreateClient();
        using var cb = b.CreateClient();
        var set = await PutAsync(ca, new { routes = new[] { new { version = 1, weight = 90 }, new { version = 2, weight = 10 } } });
        Assert.Equal([0.9, 0.1], set.Routes.Select(r => r.Share));

        // Random draws (no key), 1,000 requests, 8 at a time.
        var versions = new ConcurrentBag<int>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 1000), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, _) => versions.Add(await PredictAsync(ca)));
        var share = versions.Count(v => v == 2) / 1000.0;
        Assert.InRange(share, 0.07, 0.13);
        Assert.All(versions, v => Assert.Contains(v, new[] { 1, 2 }));

        // Keyed: the same key, the same version, on either replica; the keyed shares follow the weights too.
        var keys = Enumerable.Range(0, 300).Select(i => $"user-{i}").ToArray();
        var onA = new int[keys.Length];
        var onB = new int[keys.Length];
        await Parallel.ForEachAsync(Enumerable.Range(0, keys.Length), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            onA[i] = await PredictAsync(ca, keys[i]);
            onB[i] = await PredictAsync(cb, keys[i]);
        });
        Assert.Equal(onA, onB);
        Assert.InRange(onA.Count(v => v == 2) / (double)keys.Length, 0.05, 0.15);
        Assert.Equal(onA[0], await PredictAsync(ca, keys[0])); // and again later

        // A version asked for explicitly is not split.
        Assert.Equal(2, await PredictAsync(ca, query: "?model=alpha&version=2"));

        // Each version's requests on this replica.
        var traffic = (await ca.GetFromJsonAsync<TrafficResponse>(new Uri("/models/alpha/traffic", UriKind.Relative)))!;
        Assert.True(traffic.Routes.Single(r => r.Version == 2).Requests >= 70);
        Assert.True(traffic.Routes.Single(r => r.Version == 1).MeanLatencyMs > 0);
    }

    [Fact]
    public async Task A_split_set_on_one_replica_is_applied_by_the_other_within_about_a_second_and_deleting_it_rolls_back()
    {
        using var ca = a.CreateClient();
        using var cb = b.CreateClient();
        Assert.Equal(1, await PredictAsync(cb, "k")); // B has read "no split" now

        await PutAsync(ca, new { routes = new[] { new { version = 2, weight = 1 } } });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (await PredictAsync(cb, "k") != 2)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), "replica B did not apply the split within 3 s");
            await Task.Delay(50);
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2.5), $"took {watch.Elapsed.TotalSeconds:F1} s");

        using var deleted = await ca.DeleteAsync(new Uri("/models/alpha/traffic", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(1, await PredictAsync(ca, "k"));
        Assert.Empty((await ca.GetFromJsonAsync<TrafficResponse>(new Uri("/models/alpha/traffic", UriKind.Relative)))!.Routes);
    }

    [Fact]
    public async Task A_shadow_gets_a_copy_of_every_request_its_answers_never_reach_clients_and_its_agreement_is_counted()
    {
        using var ca = a.CreateClient();
        await PutAsync(ca, new { routes = new[] { new { version = 1, weight = 1 } }, shadow = 2 });
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(1, await PredictAsync(ca, $"s{i}")); // only the routed version ever answers
        }

        TrafficResponse traffic;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await Task.Delay(100);
            traffic = (await ca.GetFromJsonAsync<TrafficResponse>(new Uri("/models/alpha/traffic", UriKind.Relative)))!;
        }
        while (traffic.Shadow!.Images + traffic.Shadow.Skipped + traffic.Shadow.Failed < 40 && watch.Elapsed < TimeSpan.FromSeconds(20));

        var shadow = traffic.Shadow!;
        Assert.Equal(2, shadow.Version);
        Assert.Equal(0, shadow.Failed);
        Assert.Equal(40, shadow.Images + shadow.Skipped);
        Assert.True(shadow.Images >= 20, $"only {shadow.Images} of 40 copies ran (sequential requests leave the shadow time)");
        Assert.InRange(shadow.Agreed, 0, shadow.Images);
        Assert.Equal(shadow.Images, shadow.PerClass.Sum(c => c.Images));
        Assert.Equal(shadow.Agreed, shadow.PerClass.Sum(c => c.Agreed));
        Assert.Equal((double)shadow.Agreed / shadow.Images, shadow.Rate!.Value, 9);
        Assert.Equal(10, shadow.PerClass.Count);

        var metrics = await ca.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("nin_inference_shadow_images_total{", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_splits_are_refused_naming_the_problem()
    {
        using var ca = a.CreateClient();
        await PutAsync(ca, new { routes = new[] { new { version = 1, weight = 1 }, new { version = 1, weight = 2 } } }, HttpStatusCode.BadRequest);
        await PutAsync(ca, new { routes = new[] { new { version = 1, weight = 0 } } }, HttpStatusCode.BadRequest);
        await PutAsync(ca, new { routes = Array.Empty<object>() }, HttpStatusCode.BadRequest);
        await PutAsync(ca, new { routes = new[] { new { version = 1, weight = 1 } }, shadow = 1 }, HttpStatusCode.BadRequest);
        await PutAsync(ca, new { routes = new[] { new { version = 9, weight = 1 } } }, HttpStatusCode.NotFound);
        using var unknown = await ca.PutAsJsonAsync(new Uri("/models/nope/traffic", UriKind.Relative), new { routes = new[] { new { version = 1, weight = 1 } } });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.False(File.Exists(TrafficSplit.PathFor(Path.Combine(home, "models"), "alpha")));
        Assert.Equal(1, await PredictAsync(ca));
    }
}
