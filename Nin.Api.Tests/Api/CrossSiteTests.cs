using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Security;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>An open service, a keyed one with a reachable Hangfire dashboard and tiny rate limits, each with alpha v1 active.</summary>
public sealed class CrossSiteFixture : IDisposable
{
    public const string Key = "cross-site-key-0";

    public CrossSiteFixture()
    {
        Open = Create(new());
        Keyed = Create(new()
        {
            ["Hangfire:DashboardAllowRemote"] = "true", // the test server has no remote address: only the key decides
            ["RateLimiting:PredictPermitLimit"] = "2",
            ["RateLimiting:PredictWindowSeconds"] = "600",
            ["RateLimiting:TrainPermitLimit"] = "2",
            ["RateLimiting:TrainWindowSeconds"] = "600",
            ["Security:AllowedOrigins:0"] = "https://app.example.com",
        }, keys: 12);
    }

    public NinApiFactory Open { get; }

    public NinApiFactory Keyed { get; }

    public static string KeyOf(int i) => $"{Key}-{i}";

    private static NinApiFactory Create(Dictionary<string, string?> settings, int keys = 0)
    {
        var home = Directory.CreateTempSubdirectory("nin-xsite-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        settings["Nin:SeedDefaultModel"] = "false";
        for (var i = 0; i < keys; i++)
        {
            settings[$"Security:ApiKeys:{i}"] = KeyOf(i);
        }

        return new NinApiFactory(settings, home, ownsHome: true);
    }

    public void Dispose()
    {
        Open.Dispose();
        Keyed.Dispose();
    }
}

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class CrossSiteTests(CrossSiteFixture fixture) : IClassFixture<CrossSiteFixture>
{
    private static HttpRequestMessage Request(HttpMethod method, string path, HttpContent? content, string? origin = null, string? site = null)
    {
        var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        if (site is not null)
        {
            request.Headers.Add("Sec-Fetch-Site", site);
        }

        return request;
    }

    /// <summary>What a page of another site can send without a CORS preflight, to every route that changes state.</summary>
    public static TheoryData<string, string, string?, string?> CrossSiteRequests => new()
    {
        { "POST", "/models/alpha/versions/1/activate", "http://attacker.example", null },
        { "POST", "/models/alpha/versions/1/activate", null, "cross-site" },
        { "POST", "/models/alpha/versions/1/activate", "null", null },
        { "POST", "/models/alpha/versions/1/activate", "http://localhost.attacker.example", "same-site" },
        { "DELETE", "/models/alpha/versions/1", "http://attacker.example", null },
        { "POST", "/datasets", "http://attacker.example", "cross-site" },
        { "POST", "/train", "http://attacker.example", null },
        { "POST", "/predict", "http://attacker.example", null },
        { "POST", "/hangfire/jobs/succeeded/requeue", "http://attacker.example", "cross-site" },
        { "POST", "/v2/models/alpha/infer", "http://localhost:1", null },
    };

    [Theory]
    [MemberData(nameof(CrossSiteRequests))]
    public async Task State_changing_requests_from_another_site_are_refused(string method, string path, string? origin, string? site)
    {
        using var client = fixture.Open.CreateClient();
        using var request = Request(new HttpMethod(method), path, new StringContent("{\"x\":1}", Encoding.UTF8, "text/plain"), origin, site);
        using var response = await client.SendAsync(request);
        if (path.StartsWith("/v2/", StringComparison.Ordinal))
        {
            // Under /v2 every error is the Open Inference Protocol's { "error": "..." } (docs/serving.md).
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            var error = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(response.Content)).GetProperty("error").GetString();
            Assert.StartsWith("Cross-site request refused.", error, StringComparison.Ordinal);
            return;
        }

        var problem = await SecurityApiTests.AssertProblem(response, HttpStatusCode.Forbidden);
        Assert.Equal("Cross-site request refused.", problem.Title);
    }

    [Fact]
    public async Task A_cross_site_websocket_upgrade_to_the_hub_is_refused()
    {
        using var client = fixture.Open.CreateClient();
        using var request = Request(HttpMethod.Get, "/hubs/training?id=x", null, "http://attacker.example");
        request.Headers.Connection.Add("Upgrade");
        request.Headers.Upgrade.Add(new System.Net.Http.Headers.ProductHeaderValue("websocket"));
        using var response = await client.SendAsync(request);
        await SecurityApiTests.AssertProblem(response, HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Same_origin_pages_non_browser_clients_allowed_origins_and_reads_pass()
    {
        using var client = fixture.Open.CreateClient();
        foreach (var (origin, site) in new (string?, string?)[] { (null, null), ("http://localhost", "same-origin"), (null, "none"), ("http://LOCALHOST", null) })
        {
            using var request = Request(HttpMethod.Post, "/models/alpha/versions/1/activate", null, origin, site);
            using var response = await client.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{origin} {site}: {response.StatusCode}");
        }

        using var read = Request(HttpMethod.Get, "/models", null, "http://attacker.example", "cross-site");
        using var readResponse = await client.SendAsync(read);
        Assert.Equal(HttpStatusCode.OK, readResponse.StatusCode);

        using var keyed = SecurityApiTests.WithKey(fixture.Keyed, CrossSiteFixture.KeyOf(11));
        using var allowed = Request(HttpMethod.Post, "/models/alpha/versions/1/activate", null, "https://app.example.com", "cross-site");
        using var allowedResponse = await keyed.SendAsync(allowed);
        Assert.Equal(HttpStatusCode.OK, allowedResponse.StatusCode);
    }

    [Fact]
    public async Task The_hangfire_dashboard_needs_the_key_and_its_antiforgery_token()
    {
        using var anonymous = SecurityApiTests.WithKey(fixture.Keyed, null);
        using var page = await anonymous.GetAsync(new Uri("/hangfire", UriKind.Relative));
        await SecurityApiTests.AssertProblem(page, HttpStatusCode.Unauthorized);
        using var requeue = await anonymous.PostAsync(new Uri("/hangfire/jobs/succeeded/requeue", UriKind.Relative), new FormUrlEncodedContent([new("jobs[]", "1")]));
        await SecurityApiTests.AssertProblem(requeue, HttpStatusCode.Unauthorized);

        using var keyed = SecurityApiTests.WithKey(fixture.Keyed, CrossSiteFixture.KeyOf(10));
        using var dashboard = await keyed.GetAsync(new Uri("/hangfire", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, dashboard.StatusCode);
        // With the key but without the antiforgery token its pages carry: what a forged form would send.
        using var forged = await keyed.PostAsync(new Uri("/hangfire/jobs/succeeded/requeue", UriKind.Relative), new FormUrlEncodedContent([new("jobs[]", "1")]));
        Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
    }

    /// <summary>Spellings routing accepts for the limited endpoints: each must meet the same limit.</summary>
    public static TheoryData<int, string, string> Spellings => new()
    {
        { 0, "POST", "/PREDICT" },
        { 1, "POST", "/predict/" },
        { 2, "POST", "/Predict/" },
        { 3, "POST", "/v2/models/alpha/INFER" },
        { 4, "POST", "/v2/models/alpha/infer/" },
        { 5, "POST", "/V2/Models/alpha/Infer" },
        { 6, "POST", "/TRAIN" },
        { 7, "POST", "/train/" },
    };

    [Theory]
    [MemberData(nameof(Spellings))]
    public async Task Rate_limits_hold_whatever_the_spelling_of_the_path(int key, string method, string path)
    {
        using var client = SecurityApiTests.WithKey(fixture.Keyed, CrossSiteFixture.KeyOf(key));
        for (var i = 0; i < 2; i++)
        {
            using var request = Request(new HttpMethod(method), path, new StringContent("""{"epochs":0}""", Encoding.UTF8, "application/json"));
            using var allowed = await client.SendAsync(request);
            Assert.NotEqual(HttpStatusCode.TooManyRequests, allowed.StatusCode);
            Assert.NotEqual(HttpStatusCode.NotFound, allowed.StatusCode);
        }

        using var over = Request(new HttpMethod(method), path, new StringContent("""{"epochs":0}""", Encoding.UTF8, "application/json"));
        using var limited = await client.SendAsync(over);
        if (path.StartsWith("/v2", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode); // in the Open Inference Protocol's error body
            Assert.Contains("limit", (await limited.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("error").GetString(), StringComparison.Ordinal);
        }
        else
        {
            await SecurityApiTests.AssertProblem(limited, HttpStatusCode.TooManyRequests);
        }

        Assert.NotNull(limited.Headers.RetryAfter);
    }

    [Fact]
    public async Task Bound_to_loopback_only_loopback_host_names_are_answered()
    {
        var home = Directory.CreateTempSubdirectory("nin-rebind-").FullName;
        try
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "alpha", seed: 1);
            store.Activate("alpha", 1);
            using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" }, home);
            factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
            factory.StartServer();
            var address = new Uri(factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
            using var http = new HttpClient { BaseAddress = address };

            foreach (var host in new[] { $"127.0.0.1:{address.Port}", $"localhost:{address.Port}", "localhost", $"[::1]:{address.Port}", $"dash.localhost:{address.Port}" })
            {
                using var ok = new HttpRequestMessage(HttpMethod.Get, new Uri("/models", UriKind.Relative));
                ok.Headers.Host = host;
                using var answered = await http.SendAsync(ok);
                Assert.True(answered.StatusCode == HttpStatusCode.OK, $"{host}: {answered.StatusCode}");
            }

            // DNS rebinding: attacker.example re-pointed at 127.0.0.1, so the browser calls it same-origin.
            foreach (var host in new[] { $"attacker.example:{address.Port}", "attacker.example", $"127.0.0.1.nip.io:{address.Port}" })
            {
                using var rebound = new HttpRequestMessage(HttpMethod.Post, new Uri("/models/alpha/versions/1/activate", UriKind.Relative));
                rebound.Headers.Host = host;
                rebound.Headers.Add("Origin", $"http://{host}");
                using var refused = await http.SendAsync(rebound);
                var problem = await SecurityApiTests.AssertProblem(refused, HttpStatusCode.BadRequest);
                Assert.Equal("Host not allowed.", problem.Title);
            }
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Theory]
    [InlineData("localhost", true)]
    [InlineData("LocalHost", true)]
    [InlineData("app.localhost", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.8.9.10", true)]
    [InlineData("[::1]", true)]
    [InlineData("attacker.example", false)]
    [InlineData("localhost.attacker.example", false)]
    [InlineData("10.0.0.1", false)]
    [InlineData("", false)]
    public void Loopback_host_names(string host, bool loopback) => Assert.Equal(loopback, LoopbackHostGuard.IsLoopbackHost(host));
}
