using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Security;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>Services with API keys configured: one with generous limits, one with tiny rate limits.</summary>
public sealed class SecurityFixture : IDisposable
{
    public const string Key1 = "key-one-0123456789";
    public const string Key2 = "key-two-abcdefghij";

    public SecurityFixture()
    {
        Keyed = Create(new() { ["Security:ProtectPredict"] = "false" });
        Limited = Create(new()
        {
            ["RateLimiting:PredictPermitLimit"] = "2",
            ["RateLimiting:PredictWindowSeconds"] = "600",
            ["RateLimiting:TrainPermitLimit"] = "1",
            ["RateLimiting:TrainWindowSeconds"] = "600",
        });
        ProtectedPredict = Create(new() { ["Security:ProtectPredict"] = "true" });
    }

    public NinApiFactory Keyed { get; }

    public NinApiFactory Limited { get; }

    public NinApiFactory ProtectedPredict { get; }

    private static NinApiFactory Create(Dictionary<string, string?> extra)
    {
        var home = Directory.CreateTempSubdirectory("nin-sec-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        var settings = new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Security:ApiKeys:0"] = Key1,
            ["Security:ApiKeys:1"] = Key2,
        };
        foreach (var (k, v) in extra)
        {
            settings[k] = v;
        }

        return new NinApiFactory(settings, home, ownsHome: true);
    }

    public void Dispose()
    {
        Keyed.Dispose();
        Limited.Dispose();
        ProtectedPredict.Dispose();
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class SecurityApiTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private static readonly Uri Train = new("/train", UriKind.Relative);

    internal static HttpClient WithKey(NinApiFactory factory, string? key)
    {
        var client = factory.CreateClient();
        if (key is not null)
        {
            client.DefaultRequestHeaders.Add(ApiKeyMiddleware.HeaderName, key);
        }

        return client;
    }

    private static StringContent BadTrainBody() => new("""{"epochs":0}""", Encoding.UTF8, "application/json");

    internal static async Task<ProblemDetails> AssertProblem(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("/work/", text, StringComparison.Ordinal);
        Assert.DoesNotContain("/tmp/", text, StringComparison.Ordinal);
        var problem = System.Text.Json.JsonSerializer.Deserialize<ProblemDetails>(text, TrainingApiTests.Json)!;
        Assert.Equal((int)status, problem.Status);
        return problem;
    }

    [Fact]
    public async Task Train_without_a_key_is_401_with_a_challenge_and_with_a_wrong_key_403()
    {
        using var anonymous = WithKey(fixture.Keyed, null);
        using var missing = await anonymous.PostAsync(Train, BadTrainBody());
        await AssertProblem(missing, HttpStatusCode.Unauthorized);
        Assert.Contains(missing.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");

        using var listing = await anonymous.GetAsync(Train);
        await AssertProblem(listing, HttpStatusCode.Unauthorized);

        using var wrong = WithKey(fixture.Keyed, "key-one-012345678X");
        using var forbidden = await wrong.PostAsync(Train, BadTrainBody());
        await AssertProblem(forbidden, HttpStatusCode.Forbidden);
        using var forbiddenGet = await wrong.GetAsync(new Uri("/train/nope", UriKind.Relative));
        await AssertProblem(forbiddenGet, HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_valid_key_in_either_header_reaches_the_endpoint()
    {
        using var header = WithKey(fixture.Keyed, SecurityFixture.Key2);
        using var validation = await header.PostAsync(Train, BadTrainBody());
        Assert.Equal(HttpStatusCode.BadRequest, validation.StatusCode); // the validator answered, not the key check
        using var jobs = await header.GetAsync(Train);
        Assert.Equal(HttpStatusCode.OK, jobs.StatusCode);

        using var bearer = fixture.Keyed.CreateClient();
        bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", SecurityFixture.Key1);
        using var bearerValidation = await bearer.PostAsync(Train, BadTrainBody());
        Assert.Equal(HttpStatusCode.BadRequest, bearerValidation.StatusCode);
    }

    [Fact]
    public async Task Model_management_needs_a_key_but_reading_models_datasets_and_predict_stay_open()
    {
        using var anonymous = WithKey(fixture.Keyed, null);
        using var models = await anonymous.GetAsync(new Uri("/models", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        using var version = await anonymous.GetAsync(new Uri("/models/alpha/versions/1", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, version.StatusCode);
        using var datasets = await anonymous.GetAsync(new Uri("/datasets", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, datasets.StatusCode);
        using (var form = PredictApiTests.Form(PredictApiTests.Png(0)))
        {
            using var predict = await anonymous.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        }

        using var activate = await anonymous.PostAsync(new Uri("/models/alpha/versions/1/activate", UriKind.Relative), null);
        await AssertProblem(activate, HttpStatusCode.Unauthorized);
        using var delete = await anonymous.DeleteAsync(new Uri("/models/alpha/versions/1", UriKind.Relative));
        await AssertProblem(delete, HttpStatusCode.Unauthorized);
        using var datasetDelete = await anonymous.DeleteAsync(new Uri("/datasets/whatever", UriKind.Relative));
        await AssertProblem(datasetDelete, HttpStatusCode.Unauthorized);

        using var keyed = WithKey(fixture.Keyed, SecurityFixture.Key1);
        using var activated = await keyed.PostAsync(new Uri("/models/alpha/versions/1/activate", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, activated.StatusCode);
        using var unknown = await keyed.DeleteAsync(new Uri("/models/nope/versions/9", UriKind.Relative));
        await AssertProblem(unknown, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ProtectPredict_puts_predict_and_kserve_infer_behind_the_key()
    {
        using var anonymous = WithKey(fixture.ProtectedPredict, null);
        using (var form = PredictApiTests.Form(PredictApiTests.Png(0)))
        {
            using var predict = await anonymous.PostAsync(new Uri("/predict", UriKind.Relative), form);
            await AssertProblem(predict, HttpStatusCode.Unauthorized);
        }

        using var infer = await anonymous.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, infer.StatusCode); // under /v2 as the protocol's { "error" } body
        Assert.Contains("key", (await infer.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        using var metadata = await anonymous.GetAsync(new Uri("/v2/models/alpha", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);

        using var keyed = WithKey(fixture.ProtectedPredict, SecurityFixture.Key1);
        using (var form = PredictApiTests.Form(PredictApiTests.Png(0)))
        {
            using var predict = await keyed.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        }
    }

    private HubConnection Hub(Func<Task<string?>>? token) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(fixture.Keyed.Server.BaseAddress, "/hubs/training"), o =>
            {
                o.HttpMessageHandlerFactory = _ => fixture.Keyed.Server.CreateHandler();
                o.Transports = HttpTransportType.LongPolling;
                if (token is not null)
                {
                    o.AccessTokenProvider = token;
                }
            })
            .Build();

    [Fact]
    public async Task The_hub_needs_the_key_as_a_bearer_token_or_the_access_token_query_parameter()
    {
        await using (var anonymous = Hub(null))
        {
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => anonymous.StartAsync());
            Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        }

        await using (var wrong = Hub(() => Task.FromResult<string?>("nope")))
        {
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => wrong.StartAsync());
            Assert.Equal(HttpStatusCode.Forbidden, error.StatusCode);
        }

        await using (var keyed = Hub(() => Task.FromResult<string?>(SecurityFixture.Key1)))
        {
            await keyed.StartAsync();
            Assert.Equal(HubConnectionState.Connected, keyed.State);
        }

        // What the browser's JavaScript client sends: the key in the query string.
        using var raw = fixture.Keyed.CreateClient();
        using var negotiate = await raw.PostAsync(new Uri($"/hubs/training/negotiate?negotiateVersion=1&access_token={SecurityFixture.Key2}", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, negotiate.StatusCode);
        using var rejected = await raw.PostAsync(new Uri("/hubs/training/negotiate?negotiateVersion=1&access_token=bad", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Forbidden, rejected.StatusCode);
        // The query parameter counts only on the hub.
        using var notHere = await raw.GetAsync(new Uri($"/train?access_token={SecurityFixture.Key2}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, notHere.StatusCode);
    }

    [Fact]
    public async Task Predict_and_train_are_rate_limited_per_key_with_429_and_retry_after()
    {
        using var first = WithKey(fixture.Limited, SecurityFixture.Key1);
        for (var i = 0; i < 2; i++)
        {
            using var form = PredictApiTests.Form(PredictApiTests.Png(i));
            using var ok = await first.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using (var form = PredictApiTests.Form(PredictApiTests.Png(2)))
        {
            using var limited = await first.PostAsync(new Uri("/predict", UriKind.Relative), form);
            await AssertProblem(limited, HttpStatusCode.TooManyRequests);
            Assert.NotNull(limited.Headers.RetryAfter?.Delta);
            Assert.True(limited.Headers.RetryAfter!.Delta!.Value.TotalSeconds >= 1);
        }

        // Reading is not limited; another key and an anonymous client have their own budgets.
        using var models = await first.GetAsync(new Uri("/models", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        using var second = WithKey(fixture.Limited, SecurityFixture.Key2);
        using (var form = PredictApiTests.Form(PredictApiTests.Png(3)))
        {
            using var ok = await second.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var anonymous = WithKey(fixture.Limited, null);
        using (var form = PredictApiTests.Form(PredictApiTests.Png(4)))
        {
            using var ok = await anonymous.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var trainOnce = await first.PostAsync(Train, BadTrainBody());
        Assert.Equal(HttpStatusCode.BadRequest, trainOnce.StatusCode);
        using var trainTwice = await first.PostAsync(Train, BadTrainBody());
        await AssertProblem(trainTwice, HttpStatusCode.TooManyRequests);
        Assert.NotNull(trainTwice.Headers.RetryAfter);
        using var jobs = await first.GetAsync(Train);
        Assert.Equal(HttpStatusCode.OK, jobs.StatusCode);
    }

    [Fact]
    public void Every_endpoint_but_the_hub_has_the_default_request_timeout()
    {
        var endpoints = fixture.Keyed.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var hub = endpoints.Where(e => e.RoutePattern.RawText!.StartsWith("/hubs/training", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(hub);
        Assert.All(hub, e => Assert.NotNull(e.Metadata.GetMetadata<DisableRequestTimeoutAttribute>()));
        var predict = endpoints.Single(e => e.RoutePattern.RawText == "/predict");
        Assert.Null(predict.Metadata.GetMetadata<DisableRequestTimeoutAttribute>());
        var options = fixture.Keyed.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<RequestTimeoutOptions>>().Value;
        Assert.Equal(TimeSpan.FromSeconds(60), options.DefaultPolicy!.Timeout);
    }

    [Theory]
    [InlineData(true, "http://127.0.0.1:5080")]
    [InlineData(true, "http://localhost:5080", "http://[::1]:5080")]
    [InlineData(false, "http://0.0.0.0:5080")]
    [InlineData(false, "http://[::]:5080")]
    [InlineData(false, "http://*:5080")]
    [InlineData(false, "http://+:5080")]
    [InlineData(false, "http://127.0.0.1:5080", "http://10.0.0.5:5080")]
    public void Only_loopback_addresses_count_as_local(bool local, params string[] addresses) =>
        Assert.Equal(local, SecurityExtensions.AllLoopback(addresses));
}
