using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Data;

namespace Nin.Api.Tests.Api;

/// <summary>
/// What Triton's and KServe's clients expect of the v2 REST surface beyond infer: model configuration, statistics, the
/// repository index, <c>{ "error" }</c> bodies on every error (unknown routes included), input names checked, the
/// classification extension, and 403 for a key that is not valid, as on /train.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class KServeClientExpectationsTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    /// <summary>An infer request of <paramref name="count"/> PNGs; <paramref name="extra"/> is more JSON after the inputs (",\"outputs\":[...]").</summary>
    private static string Images(int count, string extra = "")
    {
        var data = string.Join(",", Enumerable.Range(0, count).Select(i => "\"" + Convert.ToBase64String(TestImages.FashionImage(i)) + "\""));
        return "{\"inputs\":[{\"name\":\"images\",\"shape\":[" + count + "],\"datatype\":\"BYTES\",\"data\":[" + data + "]}]" + extra + "}";
    }

    private static async Task<JsonElement> PostAsync(HttpClient client, string path, string json, HttpStatusCode expected)
    {
        using var response = await client.PostAsync(new Uri(path, UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(expected == response.StatusCode, $"{response.StatusCode}: {body}");
        return body;
    }

    [Fact]
    public async Task Config_describes_batching_tensors_and_the_preprocessing_of_the_fp32_input()
    {
        using var client = fixture.Factory.CreateClient();
        var config = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha/config", UriKind.Relative));
        Assert.Equal("alpha", config.GetProperty("name").GetString());
        Assert.True(config.GetProperty("max_batch_size").GetInt32() >= 1);
        var input = config.GetProperty("input").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "input");
        Assert.Equal("TYPE_FP32", input.GetProperty("data_type").GetString());
        Assert.Equal([1L, 67, 67], input.GetProperty("dims").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal([10L], config.GetProperty("output")[0].GetProperty("dims").EnumerateArray().Select(d => d.GetInt64()));
        var pre = config.GetProperty("preprocessing");
        Assert.Equal(28, pre.GetProperty("native_width").GetInt32());
        Assert.Contains("bilinear", pre.GetProperty("resize").GetString(), StringComparison.Ordinal);
        Assert.Equal(BuiltInDatasets.FashionMnist.ClassNames, config.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!));

        using var versioned = await client.GetAsync(new Uri("/v2/models/alpha/versions/2/config", UriKind.Relative));
        Assert.Equal("2", (await versioned.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("version").GetString());
        using var missing = await client.GetAsync(new Uri("/v2/models/alpha/versions/9/config", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Stats_count_what_each_version_served_and_the_index_lists_the_repository()
    {
        using var client = fixture.Factory.CreateClient();
        var before = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha/versions/1/stats", UriKind.Relative));
        var count = before.GetProperty("model_stats")[0].GetProperty("inference_count").GetInt64();
        await PostAsync(client, "/v2/models/alpha/versions/1/infer", Images(3), HttpStatusCode.OK);
        var after = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha/versions/1/stats", UriKind.Relative));
        var stats = after.GetProperty("model_stats")[0];
        Assert.Equal(count + 3, stats.GetProperty("inference_count").GetInt64());
        Assert.True(stats.GetProperty("inference_stats").GetProperty("success").GetProperty("ns").GetInt64() > 0);
        Assert.True(stats.GetProperty("last_inference").GetInt64() > 0);

        var all = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha/stats", UriKind.Relative));
        Assert.Equal(["1", "2"], all.GetProperty("model_stats").EnumerateArray().Select(s => s.GetProperty("version").GetString()).Order());

        var index = await PostAsync(client, "/v2/repository/index", "{}", HttpStatusCode.OK);
        var v1 = index.EnumerateArray().Single(m => m.GetProperty("name").GetString() == "alpha" && m.GetProperty("version").GetString() == "1");
        Assert.Equal("READY", v1.GetProperty("state").GetString());
        using var noBody = await client.PostAsync(new Uri("/v2/repository/index", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, noBody.StatusCode); // Triton's clients send no body and no Content-Type
    }

    [Fact]
    public async Task The_model_repository_extension_loads_and_unloads_a_model_here()
    {
        // Triton's clients call load_model/unload_model when the server lists "model_repository" among its extensions.
        using var client = fixture.Factory.CreateClient();
        var store = fixture.Factory.Services.GetRequiredService<Nin.Model.Checkpoints.ModelStore>();
        var registry = fixture.Factory.Services.GetRequiredService<ModelRegistry>();
        if (store.Find("gamma", 1) is null)
        {
            ServingFixture.AddRandom(store, "gamma", seed: 3);
        }

        Assert.Empty((await PostAsync(client, "/v2/repository/models/gamma/load", "", HttpStatusCode.OK)).EnumerateObject());
        Assert.Contains(("gamma", 1), registry.Loaded);
        var index = await PostAsync(client, "/v2/repository/index", """{"ready":true}""", HttpStatusCode.OK);
        Assert.Contains(index.EnumerateArray(), m => m.GetProperty("name").GetString() == "gamma" && m.GetProperty("state").GetString() == "READY");

        Assert.Empty((await PostAsync(client, "/v2/repository/models/gamma/unload", """{"parameters":{"unload_dependents":false}}""", HttpStatusCode.OK)).EnumerateObject());
        Assert.DoesNotContain(("gamma", 1), registry.Loaded);

        // The served model stays (409, saying how to stop serving it); unknown models, a configuration to load with and
        // malformed bodies are refused with the protocol's error body.
        var active = await PostAsync(client, "/v2/repository/models/alpha/unload", "", HttpStatusCode.Conflict);
        Assert.Contains("activate another model", active.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains(("alpha", 1), registry.Loaded);
        await PostAsync(client, "/v2/repository/models/nope/load", "", HttpStatusCode.NotFound);
        await PostAsync(client, "/v2/repository/models/nope/unload", "", HttpStatusCode.NotFound);
        var config = await PostAsync(client, "/v2/repository/models/gamma/load", """{"parameters":{"config":"{}"}}""", HttpStatusCode.BadRequest);
        Assert.Contains("config", config.GetProperty("error").GetString(), StringComparison.Ordinal);
        await PostAsync(client, "/v2/repository/models/gamma/load", """{"nope":1}""", HttpStatusCode.BadRequest);
        await PostAsync(client, "/v2/repository/models/gamma/load", "[", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Every_v2_error_is_an_error_body_and_input_names_are_checked()
    {
        using var client = fixture.Factory.CreateClient();
        // A path that is no route is 404; a route asked with another method is 405 naming the methods it answers (as
        // the rest of the API does, and as fuzzers' unsupported-method checks expect); both with the protocol's body.
        foreach (var (method, path, allow) in new[]
        {
            ("GET", "/v2/nope", null), ("GET", "/v2/models/alpha/nope", null), ("DELETE", "/v2/models/alpha", "GET"),
            ("GET", "/v2/models/alpha/infer", "POST"), ("PUT", "/v2/health/live", "GET"), ("HEAD", "/v2/health/ready", "GET"),
            ("DELETE", "/v2/models/alpha/versions/1/infer", "POST"), ("GET", "/v2/repository/index", "POST"),
        })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative)));
            Assert.True(response.StatusCode == (allow is null ? HttpStatusCode.NotFound : HttpStatusCode.MethodNotAllowed), $"{method} {path}: {response.StatusCode}");
            Assert.Equal(allow, response.Content.Headers.Allow.Count == 0 ? null : string.Join(", ", response.Content.Headers.Allow));
            if (method != "HEAD")
            {
                Assert.False(string.IsNullOrEmpty((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString()), $"{method} {path}");
            }
        }

        var zeros = string.Join(",", Enumerable.Repeat("0", 67 * 67));
        var misnamed = await PostAsync(client, "/v2/models/alpha/infer", $$"""{"inputs":[{"name":"nope","shape":[1,1,67,67],"datatype":"FP32","data":[{{zeros}}]}]}""", HttpStatusCode.BadRequest);
        Assert.Contains("'nope' is not an input", misnamed.GetProperty("error").GetString(), StringComparison.Ordinal);
        var mistyped = await PostAsync(client, "/v2/models/alpha/infer", $$"""{"inputs":[{"name":"images","shape":[1,1,67,67],"datatype":"FP32","data":[{{zeros}}]}]}""", HttpStatusCode.BadRequest);
        Assert.Contains("BYTES", mistyped.GetProperty("error").GetString(), StringComparison.Ordinal);

        // Without a Content-Type (as Triton's client sends binary bodies) the request is still read.
        var binary = Encoding.UTF8.GetBytes(Images(1));
        using var bare = new ByteArrayContent(binary);
        using var untyped = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), bare);
        Assert.Equal(HttpStatusCode.OK, untyped.StatusCode);
    }

    [Fact]
    public async Task The_classification_extension_returns_the_top_classes_as_strings()
    {
        using var client = fixture.Factory.CreateClient();
        foreach (var parameter in new[] { "classification", "class_count" })
        {
            var json = Images(2, ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":{\"" + parameter + "\":3}},{\"name\":\"label\"}]");
            var body = await PostAsync(client, "/v2/models/alpha/infer", json, HttpStatusCode.OK);
            var top = body.GetProperty("outputs")[0];
            Assert.Equal("BYTES", top.GetProperty("datatype").GetString());
            Assert.Equal([2L, 3], top.GetProperty("shape").EnumerateArray().Select(s => s.GetInt64()));
            var rows = top.GetProperty("data").EnumerateArray().Select(e => e.GetString()!.Split(':')).ToArray();
            Assert.Equal(6, rows.Length);
            Assert.All(rows, r => Assert.Contains(r[2], BuiltInDatasets.FashionMnist.ClassNames));
            Assert.True(double.Parse(r0(rows, 0)) >= double.Parse(r0(rows, 1)) && double.Parse(r0(rows, 1)) >= double.Parse(r0(rows, 2)));
            Assert.Equal(rows[0][2], body.GetProperty("outputs")[1].GetProperty("data")[0].GetString()); // the top class is the label
        }

        static string r0(string[][] rows, int i) => rows[i][0];
    }

    [Fact]
    public async Task A_wrong_key_is_403_on_v2_and_predict_as_on_train()
    {
        using var keyed = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Security:ApiKeys:0"] = "right-key-0123456789",
        }, fixture.Factory.Home);
        using var client = keyed.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "wrong-key-0123456789");
        foreach (var path in new[] { "/v2", "/v2/models/alpha", "/v2/models/alpha/ready", "/v2/health/ready" })
        {
            using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{path}: {response.StatusCode}");
            Assert.False(string.IsNullOrEmpty((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString()));
        }

        await PostAsync(client, "/v2/models/alpha/infer", Images(1), HttpStatusCode.Forbidden);
        using var form = PredictApiTests.Form(PredictApiTests.Png(0));
        using var predict = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.Forbidden, predict.StatusCode);
        using var train = await client.GetAsync(new Uri("/train", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, train.StatusCode);
    }
}
