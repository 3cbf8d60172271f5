using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>An open service and a keyed one, each with alpha v1 (active), v2 and v3.</summary>
public sealed class ModelAccessFixture : IDisposable
{
    public const string Key = "model-access-key-42";

    public ModelAccessFixture()
    {
        Open = Create(new() { ["Serving:VersionLoadsPerMinute"] = "1" });
        Keyed = Create(new() { ["Security:ApiKeys:0"] = Key });
    }

    public NinApiFactory Open { get; }

    public NinApiFactory Keyed { get; }

    private static NinApiFactory Create(Dictionary<string, string?> extra)
    {
        var home = Directory.CreateTempSubdirectory("nin-access-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        for (var seed = 1; seed <= 3; seed++)
        {
            ServingFixture.AddRandom(store, "alpha", seed);
        }

        store.Activate("alpha", 1);
        extra["Nin:SeedDefaultModel"] = "false";
        return new NinApiFactory(extra, home, ownsHome: true);
    }

    public void Dispose()
    {
        Open.Dispose();
        Keyed.Dispose();
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ModelAccessTests(ModelAccessFixture fixture) : IClassFixture<ModelAccessFixture>
{
    private static Task<HttpResponseMessage> Predict(HttpClient client, string query)
    {
        var form = PredictApiTests.Form(PredictApiTests.Png(0));
        return client.PostAsync(new Uri("/predict" + query, UriKind.Relative), form);
    }

    [Fact]
    public async Task A_deleted_version_is_no_longer_served_from_the_cache()
    {
        using var client = SecurityApiTests.WithKey(fixture.Keyed, ModelAccessFixture.Key);
        using (var loaded = await Predict(client, "?model=alpha&version=3"))
        {
            Assert.Equal(HttpStatusCode.OK, loaded.StatusCode);
        }

        using (var deleted = await client.DeleteAsync(new Uri("/models/alpha/versions/3", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var gone = await Predict(client, "?model=alpha&version=3");
        await SecurityApiTests.AssertProblem(gone, HttpStatusCode.NotFound);
        using var infer = await client.PostAsync(new Uri("/predict?model=alpha&version=1", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(1)));
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
    }

    [Fact]
    public async Task With_keys_on_anonymous_callers_are_served_the_active_version_only()
    {
        using var anonymous = SecurityApiTests.WithKey(fixture.Keyed, null);
        foreach (var query in new[] { "", "?model=alpha", "?model=alpha&version=1", "?version=1" })
        {
            using var ok = await Predict(anonymous, query);
            Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{query}: {ok.StatusCode}");
        }

        using var other = await Predict(anonymous, "?model=alpha&version=2");
        await SecurityApiTests.AssertProblem(other, HttpStatusCode.Unauthorized);
        using var kserveOther = await anonymous.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, kserveOther.StatusCode); // the active model: open, and this body is refused on its own merits

        using var keyed = SecurityApiTests.WithKey(fixture.Keyed, ModelAccessFixture.Key);
        using var allowed = await Predict(keyed, "?model=alpha&version=2");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
    }

    [Fact]
    public async Task On_an_open_instance_loads_of_non_active_versions_are_bounded()
    {
        using var client = fixture.Open.CreateClient();
        using (var first = await Predict(client, "?model=alpha&version=2"))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var second = await Predict(client, "?model=alpha&version=3"))
        {
            await SecurityApiTests.AssertProblem(second, HttpStatusCode.TooManyRequests);
            Assert.True(second.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        }

        using (var kserve = await client.GetAsync(new Uri("/v2/models/alpha/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, kserve.StatusCode); // the active version: no load
        }

        // Cached and active versions cost no load.
        using var cached = await Predict(client, "?model=alpha&version=2");
        Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
        using var active = await Predict(client, "");
        Assert.Equal(HttpStatusCode.OK, active.StatusCode);
    }

    public static TheoryData<string> BadNames => ["Alpha", "active.json", "active.json.0123.tmp", "x.tmp", "_x", "...", "a%20b", new string('a', 65)];

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task Model_routes_check_the_name_rule(string name)
    {
        using var client = SecurityApiTests.WithKey(fixture.Keyed, ModelAccessFixture.Key);
        using var get = await client.GetAsync(new Uri($"/models/{name}/versions/1", UriKind.Relative));
        await SecurityApiTests.AssertProblem(get, HttpStatusCode.BadRequest);
        using var activate = await client.PostAsync(new Uri($"/models/{name}/versions/1/activate", UriKind.Relative), null);
        await SecurityApiTests.AssertProblem(activate, HttpStatusCode.BadRequest);
        using var delete = await client.DeleteAsync(new Uri($"/models/{name}/versions/1", UriKind.Relative));
        await SecurityApiTests.AssertProblem(delete, HttpStatusCode.BadRequest);
        using var predict = await Predict(client, $"?model={name}");
        await SecurityApiTests.AssertProblem(predict, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("active.json")]
    [InlineData("active.json.5f2c.tmp")]
    [InlineData("weights.tmp")]
    public async Task The_store_s_own_file_names_are_refused_as_model_names(string name)
    {
        Assert.False(ModelStore.IsValidName(name));
        using var client = SecurityApiTests.WithKey(fixture.Keyed, ModelAccessFixture.Key);
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { modelName = name, epochs = 1, imageSize = 67, batchSize = 8, maxTrainImages = 8, maxTestImages = 8 });
        var problem = await SecurityApiTests.AssertProblem(response, HttpStatusCode.BadRequest);
        var errors = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        Assert.True(errors.TryGetProperty("modelName", out _), errors.ToString());
        Assert.NotNull(problem);
    }
}
