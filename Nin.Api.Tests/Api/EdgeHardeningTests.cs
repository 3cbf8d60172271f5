using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Models;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The service with the connecting address a test chooses (the test server has none): the header <c>X-Test-Connection</c>
/// becomes the TCP peer, as if the request had come from there.
/// </summary>
public sealed class ConnectionFactory(IDictionary<string, string?> settings, string? home = null) : NinApiFactory(settings, home, ownsHome: home is not null)
{
    public const string Header = "X-Test-Connection";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureServices(s => s.AddSingleton<IStartupFilter>(new SetConnection()));
    }

    public HttpRequestMessage Request(HttpMethod method, string path, string from, string? forwardedFor = null, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        request.Headers.Add(Header, from);
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        return request;
    }

    private sealed class SetConnection : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                if (context.Request.Headers.TryGetValue(Header, out var from))
                {
                    context.Connection.RemoteIpAddress = IPAddress.Parse(from.ToString());
                }

                return nextMiddleware(context);
            });
            next(app);
        };
    }
}

/// <summary>
/// Forwarded headers from known proxies only, the local check on the connecting address, rate limits per IPv6 /64,
/// framing and CSP headers, the server-wide body budget, and exports/samples under serving's access rule.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class EdgeHardeningTests : IDisposable
{
    private const string Key = "edge-key-0123456789";
    private const string Proxy = "10.9.8.7";
    private readonly List<IDisposable> owned = [];

    public void Dispose()
    {
        foreach (var o in owned)
        {
            o.Dispose();
        }
    }

    private ConnectionFactory Service(params (string Key, string? Value)[] settings)
    {
        var home = Directory.CreateTempSubdirectory("nin-edge-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        ServingFixture.AddRandom(store, "alpha", seed: 2);
        store.Activate("alpha", 1);
        var all = new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        var factory = new ConnectionFactory(all, home);
        owned.Add(factory);
        return factory;
    }

    private static HttpContent Png() => PredictApiTests.Form(PredictApiTests.Png(0));

    private static async Task<HttpStatusCode[]> Predicts(ConnectionFactory factory, IEnumerable<(string From, string? ForwardedFor)> requests)
    {
        using var client = factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        foreach (var (from, forwardedFor) in requests)
        {
            using var response = await client.SendAsync(factory.Request(HttpMethod.Post, "/predict", from, forwardedFor, Png()));
            statuses.Add(response.StatusCode);
        }

        return [.. statuses];
    }

    [Fact]
    public async Task Forwarded_for_is_believed_only_from_a_known_proxy_and_ipv6_clients_count_per_64()
    {
        var factory = Service(
            ("ForwardedHeaders:KnownProxies:0", Proxy),
            ("RateLimiting:PredictPermitLimit", "2"),
            ("RateLimiting:PredictWindowSeconds", "600"));

        // A client that is not a proxy cannot escape its limit with a new X-Forwarded-For each time.
        var direct = await Predicts(factory, Enumerable.Range(1, 3).Select(i => ("203.0.113.9", (string?)$"198.51.100.{i}")));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], direct);

        // Through the known proxy, each forwarded client has its own limit.
        var proxied = await Predicts(factory, Enumerable.Range(1, 3).Select(i => (Proxy, (string?)$"198.51.100.{i}")));
        Assert.All(proxied, s => Assert.Equal(HttpStatusCode.OK, s));

        // IPv6: one /64 is one client, whatever address in it each request comes from; the next /64 is another.
        var sameNetwork = await Predicts(factory, [("2001:db8:1:2::1", null), ("2001:db8:1:2:aaaa::5", null), ("2001:db8:1:2:ffff:ffff:ffff:ffff", null)]);
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], sameNetwork);
        var otherNetwork = await Predicts(factory, [("2001:db8:1:3::1", null)]);
        Assert.Equal([HttpStatusCode.OK], otherNetwork);
        Assert.Equal("2001:db8:1:2::/64", ClientNetwork.Of(IPAddress.Parse("2001:db8:1:2:dead:beef::1")));
        Assert.Equal("192.0.2.1", ClientNetwork.Of(IPAddress.Parse("::ffff:192.0.2.1")));
    }

    [Fact]
    public async Task Aspnetcore_forwardedheaders_enabled_no_longer_makes_every_sender_a_proxy()
    {
        var factory = Service(
            ("FORWARDEDHEADERS_ENABLED", "true"),
            ("RateLimiting:PredictPermitLimit", "2"),
            ("RateLimiting:PredictWindowSeconds", "600"));
        var statuses = await Predicts(factory, Enumerable.Range(1, 3).Select(i => ("203.0.113.10", (string?)$"198.51.100.{i}")));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
    }

    [Fact]
    public async Task Hangfire_is_local_by_the_connecting_address_not_by_a_header()
    {
        var factory = Service(("ForwardedHeaders:KnownProxies:0", Proxy), ("Security:ApiKeys:0", Key));
        using var client = SecurityApiTests.WithKey(factory, Key);
        async Task<HttpStatusCode> Dashboard(string from, string? forwardedFor)
        {
            using var response = await client.SendAsync(factory.Request(HttpMethod.Get, "/hangfire", from, forwardedFor));
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await Dashboard("127.0.0.1", null));
        Assert.Equal(HttpStatusCode.OK, await Dashboard("::1", null));
        Assert.NotEqual(HttpStatusCode.OK, await Dashboard("203.0.113.9", "127.0.0.1")); // a header claiming to be local
        Assert.NotEqual(HttpStatusCode.OK, await Dashboard(Proxy, "127.0.0.1"));          // a proxy relaying "localhost"
        Assert.NotEqual(HttpStatusCode.OK, await Dashboard("127.0.0.1", "203.0.113.9"));  // a proxy on this machine relaying a remote client
    }

    [Fact]
    public async Task Pages_errors_and_swagger_forbid_framing_and_carry_the_csp()
    {
        var factory = Service();
        using var client = factory.CreateClient();
        foreach (var path in new[] { "/", "/index.html", "/swagger/index.html", "/models", "/no-such-page", "/models/alpha/versions/9" })
        {
            using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
            var csp = response.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
            Assert.Contains("script-src 'self';", csp, StringComparison.Ordinal); // no inline or eval'd scripts anywhere
            Assert.Equal(!path.StartsWith("/swagger", StringComparison.Ordinal), !csp.Contains("unsafe", StringComparison.Ordinal)); // Swagger UI: inline styles only
            Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        }
    }

    [Fact]
    public async Task The_body_budget_refuses_a_body_larger_than_all_of_it_and_gives_back_what_requests_took()
    {
        var factory = Service(("Security:MaxBufferedBodyBytes", "100000"), ("RateLimiting:Enabled", "false"));
        using var client = factory.CreateClient();

        using (var huge = await client.PostAsync(new Uri("/predict", UriKind.Relative), new ByteArrayContent(new byte[150_000])))
        {
            var problem = await SecurityApiTests.AssertProblem(huge, HttpStatusCode.RequestEntityTooLarge);
            Assert.Contains("100,000", problem.Detail, StringComparison.Ordinal);
        }

        // While the budget is held (a slow upload: see HostileLiveTests, over real sockets) others get 503; here the
        // accounting: a request that was refused or answered gives its share back.
        Assert.Equal(0, factory.Services.GetRequiredService<RequestBodyBudget>().Used);
        using var after = await client.PostAsync(new Uri("/predict", UriKind.Relative), new ByteArrayContent(new byte[30_000]));
        Assert.NotEqual(HttpStatusCode.ServiceUnavailable, after.StatusCode);
        Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, after.StatusCode);
        Assert.Equal(0, factory.Services.GetRequiredService<RequestBodyBudget>().Used);
    }

    [Fact]
    public async Task Exports_follow_the_access_rule_are_built_once_per_version_write_nothing_and_are_rate_limited()
    {
        var factory = Service(("Security:ApiKeys:0", Key), ("RateLimiting:ExportPermitLimit", "40"), ("RateLimiting:ExportWindowSeconds", "600"));
        using var anonymous = factory.CreateClient();
        using var keyed = SecurityApiTests.WithKey(factory, Key);
        var version2 = Path.Combine(factory.Home, "models", "alpha", "2");
        var before = Directory.GetFiles(version2).Select(Path.GetFileName).Order().ToArray();
        Assert.DoesNotContain(before, f => f!.EndsWith(".onnx", StringComparison.Ordinal)); // made before ONNX was written at creation

        using (var active = await anonymous.GetAsync(new Uri("/models/alpha/versions/1/export?format=safetensors", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, active.StatusCode);
        }

        foreach (var format in new[] { "onnx", "safetensors", "pytorch" })
        {
            using var denied = await anonymous.GetAsync(new Uri($"/models/alpha/versions/2/export?format={format}", UriKind.Relative));
            await SecurityApiTests.AssertProblem(denied, HttpStatusCode.Unauthorized);
        }

        using (var denied = await anonymous.GetAsync(new Uri("/models/alpha/versions/2/samples", UriKind.Relative)))
        {
            await SecurityApiTests.AssertProblem(denied, HttpStatusCode.Unauthorized);
        }

        // Twelve at once: one build; every answer the same bytes; nothing written beside the checkpoint.
        var artefacts = factory.Services.GetRequiredService<ModelArtefacts>();
        var builds = artefacts.Builds;
        var downloads = await Task.WhenAll(Enumerable.Range(0, 12).Select(async _ =>
        {
            using var response = await keyed.GetAsync(new Uri("/models/alpha/versions/2/export?format=onnx", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (Bytes: await response.Content.ReadAsByteArrayAsync(), ETag: response.Headers.ETag);
        }));
        Assert.Equal(1, artefacts.Builds - builds);
        Assert.All(downloads, d => Assert.Equal(downloads[0].Bytes, d.Bytes));
        using (var session = new Microsoft.ML.OnnxRuntime.InferenceSession(downloads[0].Bytes))
        {
            Assert.Equal("probabilities", session.OutputMetadata.Keys.Single());
        }

        Assert.Equal(before, Directory.GetFiles(version2).Select(Path.GetFileName).Order().ToArray());

        // A client holding the ETag is answered 304, without a body or a build.
        using var conditional = new HttpRequestMessage(HttpMethod.Get, new Uri("/models/alpha/versions/2/export?format=onnx", UriKind.Relative));
        conditional.Headers.IfNoneMatch.Add(downloads[0].ETag!);
        using (var notModified = await keyed.SendAsync(conditional))
        {
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }

        Assert.Equal(1, artefacts.Builds - builds);

        // The rate limit: 40 per window, 13 used by the keyed client so far (12 downloads and the 304).
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await keyed.GetAsync(new Uri("/models/alpha/versions/2/export?format=onnx", UriKind.Relative));
            statuses.Add(response.StatusCode);
        }

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(27, statuses.Count(s => s == HttpStatusCode.OK));
    }

    [Fact]
    public async Task Samples_are_rendered_once_per_evaluation_not_per_request()
    {
        var factory = Service(("RateLimiting:Enabled", "false"));
        var version1 = Path.Combine(factory.Home, "models", "alpha", "1");
        WriteEvaluation(version1, count: 300);
        using var client = factory.CreateClient();
        var gallery = factory.Services.GetRequiredService<TestSampleGallery>();
        var builds = gallery.Builds;
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            client.GetFromJsonAsync<TestSamplesResponse>(new Uri($"/models/alpha/versions/1/samples?limit={10 + i}&onlyWrong={i % 2 == 0}", UriKind.Relative), TrainingApiTests.Json)));
        Assert.Equal(1, gallery.Builds - builds);
        Assert.All(answers, a => Assert.Equal(300, a!.TestImages));
        Assert.Equal(10, answers[0]!.Items.Count);
        Assert.All(answers[0]!.Items, s => Assert.False(s.Correct));
        Assert.Equal(answers[1]!.Items.Select(s => s.Index).Take(11), answers[3]!.Items.Select(s => s.Index).Take(11));

        // A new evaluation is a new gallery.
        await Task.Delay(20);
        WriteEvaluation(version1, count: 200);
        var fresh = await client.GetFromJsonAsync<TestSamplesResponse>(new Uri("/models/alpha/versions/1/samples", UriKind.Relative), TrainingApiTests.Json);
        Assert.Equal(200, fresh!.TestImages);
        Assert.Equal(2, gallery.Builds - builds);
    }

    /// <summary>An evaluation of the first <paramref name="count"/> Fashion-MNIST test images: every fifth one wrong.</summary>
    private static void WriteEvaluation(string versionDirectory, int count)
    {
        var labels = TestImages.FashionTest.Labels.Take(count).Select(l => (int)l).ToArray();
        var predicted = labels.Select((l, i) => i % 5 == 0 ? (l + 1) % 10 : l).ToArray();
        var probability = labels.Select((_, i) => 0.5f + (i % 7 / 20f)).ToArray();
        var metadata = Checkpoint.ReadMetadata(versionDirectory) with
        {
            Recipe = new TrainingRecipe { Dataset = "fashion-mnist", TestImages = count },
        };
        File.WriteAllText(Path.Combine(versionDirectory, "model.json"), JsonSerializer.Serialize(metadata, ModelMetadata.JsonOptions));
        var temp = Path.Combine(versionDirectory, EvaluationFiles.PredictionsFile + ".tmp");
        File.WriteAllText(temp, JsonSerializer.Serialize(new TestPredictions(labels, predicted, probability), ModelMetadata.JsonOptions));
        File.Move(temp, Path.Combine(versionDirectory, EvaluationFiles.PredictionsFile), overwrite: true);
    }
}
