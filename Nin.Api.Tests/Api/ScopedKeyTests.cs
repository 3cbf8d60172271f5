using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Security;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>A service with an admin key, a predict key, a train key (one given by its SHA-256) and a keys file re-read every 0.2 s.</summary>
public sealed class ScopedKeyFixture : IDisposable
{
    public const string Admin = "admin-key-0123456789";
    public const string Predict = "predict-key-0123456789";
    public const string Train = "train-key-0123456789";

    public ScopedKeyFixture()
    {
        var home = Directory.CreateTempSubdirectory("nin-scopes-").FullName;
        KeysFile = Path.Combine(home, "keys.json");
        File.WriteAllText(KeysFile, "[]");
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        ServingFixture.AddRandom(store, "alpha", seed: 2);
        store.Activate("alpha", 1);
        Factory = new NinApiFactory(
            new Dictionary<string, string?>
            {
                ["Nin:SeedDefaultModel"] = "false",
                ["Security:ProtectPredict"] = "true",
                ["Security:ApiKeys:0"] = Admin,
                ["Security:Keys:0:Name"] = "app",
                ["Security:Keys:0:Key"] = Predict,
                ["Security:Keys:0:Scopes:0"] = "predict",
                ["Security:Keys:1:Name"] = "trainer",
                ["Security:Keys:1:Sha256"] = Convert.ToHexStringLower(ApiKeyRing.Hash(Train)),
                ["Security:Keys:1:Scopes:0"] = "train",
                ["Security:KeysFile"] = KeysFile,
                ["Security:KeysFileReloadSeconds"] = "0.2",
                ["RateLimiting:Enabled"] = "false",
            },
            home,
            ownsHome: true);
    }

    public NinApiFactory Factory { get; }

    public string KeysFile { get; }

    public void Dispose() => Factory.Dispose();
}

/// <summary>Keys with scopes, reloaded without a restart, and every endpoint's scope visible in its metadata.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ScopedKeyTests(ScopedKeyFixture fixture) : IClassFixture<ScopedKeyFixture>
{
    private static Uri Relative(string path) => new(path, UriKind.Relative);

    private async Task<HttpStatusCode> Status(string? key, HttpMethod method, string path, HttpContent? content = null)
    {
        using var client = SecurityApiTests.WithKey(fixture.Factory, key);
        using var request = new HttpRequestMessage(method, Relative(path)) { Content = content };
        using var response = await client.SendAsync(request);
        if (response.StatusCode == HttpStatusCode.Forbidden && key is not null && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(body.TryGetProperty("requiredScope", out _), body.ToString());
        }

        return response.StatusCode;
    }

    private static HttpContent Png() => PredictApiTests.Form(PredictApiTests.Png(0));

    private static HttpContent BadTrain() => new StringContent("""{"epochs":0}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task Each_scope_opens_its_own_routes_only_and_admin_opens_all()
    {
        // predict: inference (protected here) and non-active versions; nothing that trains or changes what is served.
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/predict", Png()));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/predict?model=alpha&version=2", Png()));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Predict, HttpMethod.Get, "/models/alpha/versions/2/export?format=safetensors"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/train", BadTrain()));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Get, "/train"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Get, "/sweeps"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/models/alpha/versions/1/activate"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Delete, "/datasets/u-0000000000000000"));

        // train: jobs, datasets, evaluations; not inference, not model management.
        Assert.Equal(HttpStatusCode.BadRequest, await Status(ScopedKeyFixture.Train, HttpMethod.Post, "/train", BadTrain()));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Train, HttpMethod.Get, "/train"));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Train, HttpMethod.Get, "/sweeps"));
        Assert.Equal(HttpStatusCode.NotFound, await Status(ScopedKeyFixture.Train, HttpMethod.Delete, "/datasets/u-0000000000000000"));
        Assert.Equal(HttpStatusCode.Conflict, await Status(ScopedKeyFixture.Train, HttpMethod.Post, "/models/alpha/versions/1/evaluate"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Post, "/predict", Png()));
        // ... on every protocol: a train key is a valid key, so KServe reads it as such (200 where anyone may read), and
        // refuses with 403 what needs 'predict' (inference here, a non-active version).
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Train, HttpMethod.Get, "/v2/health/live"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Get, "/v2/models/alpha/versions/2/ready"));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Predict, HttpMethod.Get, "/v2/models/alpha/versions/2/ready"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Status(null, HttpMethod.Get, "/v2/models/alpha/versions/2/ready"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Post, "/models/alpha/versions/1/activate"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Delete, "/models/alpha/versions/2"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Get, "/hangfire"));

        // Other spellings of a route meet the same rule.
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Train, HttpMethod.Post, "/MODELS/alpha/versions/1/Activate/"));
        Assert.Equal(HttpStatusCode.Forbidden, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/Train/", BadTrain()));

        // admin (the plain ApiKeys): everything.
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Admin, HttpMethod.Post, "/predict", Png()));
        Assert.Equal(HttpStatusCode.BadRequest, await Status(ScopedKeyFixture.Admin, HttpMethod.Post, "/train", BadTrain()));
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Admin, HttpMethod.Post, "/models/alpha/versions/1/activate"));

        // No key: 401; a key that is not one: 403.
        Assert.Equal(HttpStatusCode.Unauthorized, await Status(null, HttpMethod.Post, "/predict", Png()));
        Assert.Equal(HttpStatusCode.Forbidden, await Status("not-a-key", HttpMethod.Post, "/predict", Png()));
    }

    [Fact]
    public async Task Keys_in_the_keys_file_are_added_and_revoked_without_a_restart()
    {
        const string added = "file-key-0123456789";
        Assert.Equal(HttpStatusCode.Forbidden, await Status(added, HttpMethod.Post, "/predict", Png()));

        await File.WriteAllTextAsync(fixture.KeysFile, $$"""[ { "name": "from-file", "key": "{{added}}", "scopes": ["predict"] } ]""");
        Assert.True(await Eventually(async () => await Status(added, HttpMethod.Post, "/predict", Png()) == HttpStatusCode.OK), "the added key was never accepted");
        Assert.Equal(HttpStatusCode.Forbidden, await Status(added, HttpMethod.Post, "/train", BadTrain()));

        // A broken file keeps the keys read before; an empty list revokes them.
        await File.WriteAllTextAsync(fixture.KeysFile, "[ { not json");
        await Task.Delay(600);
        Assert.Equal(HttpStatusCode.OK, await Status(added, HttpMethod.Post, "/predict", Png()));
        await File.WriteAllTextAsync(fixture.KeysFile, "[]");
        Assert.True(await Eventually(async () => await Status(added, HttpMethod.Post, "/predict", Png()) == HttpStatusCode.Forbidden), "the removed key still works");
        Assert.Equal(HttpStatusCode.OK, await Status(ScopedKeyFixture.Predict, HttpMethod.Post, "/predict", Png()));
    }

    [Fact]
    public void Every_endpoint_that_changes_state_names_its_scope_in_metadata()
    {
        var endpoints = fixture.Factory.Services.GetServices<EndpointDataSource>().SelectMany(s => s.Endpoints).OfType<RouteEndpoint>().ToArray();
        // POSTs that only read are the protocols' own verbs: KServe's repository index and gRPC's liveness, readiness and
        // metadata RPCs (gRPC's ModelInfer is inference and names its scope).
        static bool ReadsOnly(RouteEndpoint e) => e.RoutePattern.RawText is "/v2/repository/index"
            || (e.RoutePattern.RawText?.StartsWith("/inference.GRPCInferenceService/", StringComparison.Ordinal) == true && !e.RoutePattern.RawText.EndsWith("/ModelInfer", StringComparison.Ordinal));
        var changing = endpoints.Where(e => !ReadsOnly(e) && e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods.Any(m => m is "POST" or "PUT" or "DELETE" or "PATCH") == true).ToArray();
        Assert.NotEmpty(changing);
        foreach (var endpoint in changing)
        {
            Assert.True(ApiScopes.For(endpoint) is not null, $"{endpoint.RoutePattern.RawText} has no scope");
        }

        RequiredScopeMetadata? Declared(string pattern, string method) => endpoints
            .Single(e => e.RoutePattern.RawText == pattern && e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Contains(method))
            .Metadata.GetMetadata<RequiredScopeMetadata>();

        Assert.Equal(ApiScope.Train, Declared("/train/", "POST")?.Scope);
        Assert.Equal(ApiScope.Train, Declared("/datasets/", "POST")?.Scope);
        Assert.Equal(ApiScope.Train, Declared("/models/{name}/versions/{version:int}/evaluate", "POST")?.Scope);
        Assert.Equal(ApiScope.Admin, Declared("/models/{name}/versions/{version:int}/activate", "POST")?.Scope);
        Assert.Equal(ApiScope.Admin, Declared("/models/{name}/versions", "POST")?.Scope);
        Assert.Equal(new RequiredScopeMetadata(ApiScope.Predict, NonActiveVersions: true), Declared("/models/{name}/versions/{version:int}/export", "GET"));
        Assert.Equal(new RequiredScopeMetadata(ApiScope.Predict, NonActiveVersions: true), Declared("/models/{name}/versions/{version:int}/samples/{index:int}", "GET"));
        Assert.Null(Declared("/models/", "GET"));
        Assert.Null(Declared("/models/{name}/compare", "GET")); // read like the other GET /models routes
        Assert.Equal(new RequiredScopeMetadata(ApiScope.Predict, WhenPredictProtected: true), ApiScopes.For(endpoints.Single(e => e.RoutePattern.RawText == "/predict")));
    }

    private static async Task<bool> Eventually(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 50; i++)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(200);
        }

        return false;
    }
}
