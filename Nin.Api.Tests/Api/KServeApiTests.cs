using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Nin.Model.Data;

namespace Nin.Api.Tests.Api;

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class KServeApiTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    private HttpClient Client => fixture.Factory.CreateClient();

    [Fact]
    public async Task Health_and_readiness()
    {
        using var client = Client;
        Assert.True((await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/health/live", UriKind.Relative))).GetProperty("live").GetBoolean());
        Assert.True((await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/health/ready", UriKind.Relative))).GetProperty("ready").GetBoolean());
        using var ready = await client.GetAsync(new Uri("/v2/models/alpha/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var missing = await client.GetAsync(new Uri("/v2/models/nope/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("nope", (await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metadata_describes_inputs_and_outputs()
    {
        using var client = Client;
        var meta = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/alpha", UriKind.Relative));
        Assert.Equal("alpha", meta.GetProperty("name").GetString());
        Assert.Equal(["2", "1"], meta.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        var input = meta.GetProperty("inputs")[0];
        Assert.Equal("input", input.GetProperty("name").GetString());
        Assert.Equal("FP32", input.GetProperty("datatype").GetString());
        Assert.Equal([-1L, 1, 67, 67], input.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()));
        Assert.Equal([-1L, 10], meta.GetProperty("outputs")[0].GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()));
    }

    [Fact]
    public async Task Infer_with_a_tensor_and_with_encoded_bytes_agree()
    {
        using var client = Client;
        // The FP32 path takes preprocessed input: the same bilinear resize of x/255 the service does.
        var pixels = TestImages.FashionTest.Pixels.AsSpan(0, 784).ToArray();
        using var bytes = TorchSharp.torch.tensor(pixels, [1, 1, 28, 28], TorchSharp.torch.ScalarType.Byte);
        using var pre = Nin.Model.Training.Preprocess.ToNetworkInput(bytes, 67);
        var floats = pre.data<float>().ToArray();

        var tensorRequest = new { id = "t1", inputs = new[] { new { name = "input", shape = new[] { 1, 1, 67, 67 }, datatype = "FP32", data = floats } } };
        using var r1 = await client.PostAsJsonAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), tensorRequest);
        Assert.Equal(HttpStatusCode.OK, r1.StatusCode);
        var a = await r1.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("alpha", a.GetProperty("model_name").GetString());
        Assert.Equal("1", a.GetProperty("model_version").GetString());
        Assert.Equal("t1", a.GetProperty("id").GetString());
        var probsA = a.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(10, probsA.Length);
        Assert.Equal(1.0, probsA.Sum(), 4);

        var bytesRequest = new { inputs = new[] { new { name = "images", shape = new[] { 2 }, datatype = "BYTES", data = new[] { Convert.ToBase64String(TestImages.FashionImage(0)), Convert.ToBase64String(TestImages.FashionImage(1)) } } } };
        using var r2 = await client.PostAsJsonAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), bytesRequest);
        Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
        var b = await r2.Content.ReadFromJsonAsync<JsonElement>();
        var outputs = b.GetProperty("outputs");
        Assert.Equal([2L, 10], outputs[0].GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()));
        var probsB = outputs[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(probsA[i], probsB[i], 5);
        }

        Assert.Equal(2, outputs[1].GetProperty("data").GetArrayLength());
        Assert.Contains(outputs[1].GetProperty("data")[0].GetString(), BuiltInDatasets.FashionMnist.ClassNames);
    }

    [Theory]
    [InlineData("{ nope", 400)]
    [InlineData("""{"inputs":[]}""", 400)]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[0]}]}""", 400)]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,1,67,67],"datatype":"FP32","data":[1,2,3]}]}""", 400)]
    [InlineData("""{"inputs":[{"name":"input","shape":[1],"datatype":"INT8","data":[1]}]}""", 400)]
    [InlineData("""{"inputs":[{"name":"images","shape":[1],"datatype":"BYTES","data":["not base64!"]}]}""", 400)]
    [InlineData("""{"inputs":[{"name":"images","shape":[1],"datatype":"BYTES","data":["aGVsbG8="]}]}""", 400)]
    public async Task Bad_infer_requests_get_an_error_body(string json, int status)
    {
        using var client = Client;
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.False(string.IsNullOrEmpty((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString()));

        using var unknown = await client.PostAsync(new Uri("/v2/models/nope/infer", UriKind.Relative), new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }
}
