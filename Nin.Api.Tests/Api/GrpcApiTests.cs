using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Nin.Api.Serving.Grpc;
using Nin.Model.Data;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The Open Inference Protocol over gRPC with the .NET client (Grpc.Net.Client, generated from the same .proto): the same
/// data plane as REST — the same answers for the same image, errors as status codes, deadlines, keys as metadata.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class GrpcApiTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    private GRPCInferenceService.GRPCInferenceServiceClient Client(NinApiFactory? factory = null)
    {
        factory ??= fixture.Factory;
        var channel = GrpcChannel.ForAddress(factory.Server.BaseAddress, new GrpcChannelOptions { HttpHandler = factory.Server.CreateHandler() });
        return new GRPCInferenceService.GRPCInferenceServiceClient(channel);
    }

    private static ModelInferRequest Images(string model, params byte[][] images)
    {
        var request = new ModelInferRequest { ModelName = model };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "images", Datatype = "BYTES", Contents = new InferTensorContents() };
        input.Shape.Add(images.Length);
        input.Contents.BytesContents.Add(images.Select(ByteString.CopyFrom));
        request.Inputs.Add(input);
        return request;
    }

    [Fact]
    public async Task Health_metadata_and_inference_match_the_rest_answers()
    {
        var client = Client();
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.True((await client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = "alpha" })).Ready);
        var meta = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "alpha" });
        Assert.Equal(["1", "2"], meta.Versions.Order());
        Assert.Equal([-1L, 1, 67, 67], meta.Inputs.Single(i => i.Name == "input").Shape);

        // BYTES images: the same probabilities as /predict gives for the same file.
        var png = TestImages.FashionImage(0);
        var response = await client.ModelInferAsync(Images("alpha", png, png));
        Assert.Equal("1", response.ModelVersion);
        var probabilities = response.Outputs.Single(o => o.Name == "probabilities");
        Assert.Equal([2L, 10], probabilities.Shape);
        using var http = fixture.Factory.CreateClient();
        using var form = PredictApiTests.Form(("images", "fm-0.png", png, "image/png"));
        using var rest = await http.PostAsync(new Uri("/predict?topK=10", UriKind.Relative), form);
        var top = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(rest.Content)).GetProperty("predictions")[0].GetProperty("top");
        foreach (var score in top.EnumerateArray())
        {
            Assert.Equal(score.GetProperty("probability").GetDouble(), probabilities.Contents.Fp32Contents[score.GetProperty("index").GetInt32()], 5);
        }

        Assert.Contains(response.Outputs.Single(o => o.Name == "label").Contents.BytesContents[0].ToStringUtf8(), BuiltInDatasets.FashionMnist.ClassNames);

        // FP32 as raw contents comes back raw.
        var raw = new ModelInferRequest { ModelName = "alpha", ModelVersion = "2" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.Add([1, 1, 67, 67]);
        raw.Inputs.Add(input);
        raw.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(new float[67 * 67].AsSpan())));
        var rawResponse = await client.ModelInferAsync(raw);
        Assert.Equal("2", rawResponse.ModelVersion);
        var floats = MemoryMarshal.Cast<byte, float>(rawResponse.RawOutputContents[0].Span).ToArray();
        Assert.Equal(10, floats.Length);
        Assert.Equal(1.0, floats.Sum(), 3);
    }

    [Fact]
    public async Task Class_activation_maps_and_the_traffic_key_work_as_over_rest()
    {
        var client = Client();
        using var http = fixture.Factory.CreateClient();
        var png = TestImages.FashionImage(3);

        // explain=cam as a request parameter: the same map as the REST adapter's for the same image.
        var request = Images("alpha", png);
        request.Parameters.Add("explain", new InferParameter { StringParam = "cam" });
        request.Parameters.Add("explain_class", new InferParameter { Int64Param = 1 });
        var response = await client.ModelInferAsync(request);
        var cam = response.Outputs.Single(o => o.Name == "cam");
        Assert.Equal(3, cam.Shape.Count);
        Assert.Equal(1, cam.Shape[0]);
        var body = System.Text.Json.JsonSerializer.Serialize(new
        {
            inputs = new[] { new { name = "images", shape = new[] { 1 }, datatype = "BYTES", data = new[] { Convert.ToBase64String(png) }, parameters = new { content_type = "base64" } } },
            parameters = new { explain = "cam", explain_class = 1 },
        });
        using var rest = await http.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var restBody = await rest.Content.ReadAsStringAsync();
        Assert.True(rest.IsSuccessStatusCode, restBody);
        var restCam = System.Text.Json.JsonDocument.Parse(restBody).RootElement.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "cam");
        var restValues = restCam.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(restValues.Length, cam.Contents.Fp32Contents.Count);
        Assert.All(restValues.Zip(cam.Contents.Fp32Contents), p => Assert.Equal(p.First, p.Second, 4));

        // A 50/50 split: a traffic key in the call's metadata reaches the version the same key reaches over REST.
        using (var put = await System.Net.Http.Json.HttpClientJsonExtensions.PutAsJsonAsync(http, new Uri("/models/alpha/traffic", UriKind.Relative), new { routes = new[] { new { version = 1, weight = 50 }, new { version = 2, weight = 50 } } }))
        {
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }

        try
        {
            var versions = new HashSet<string>();
            for (var i = 0; i < 12; i++)
            {
                var key = $"user-{i}";
                var overGrpc = await client.ModelInferAsync(Images("alpha", png), new Metadata { { "x-traffic-key", key } });
                using var form = PredictApiTests.Form(("images", "fm.png", png, "image/png"));
                using var keyed = new HttpRequestMessage(HttpMethod.Post, new Uri("/predict", UriKind.Relative)) { Content = form };
                keyed.Headers.Add("X-Traffic-Key", key);
                using var overRest = await http.SendAsync(keyed);
                var model = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(overRest.Content)).GetProperty("model");
                Assert.Equal(model.GetProperty("version").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture), overGrpc.ModelVersion);
                versions.Add(overGrpc.ModelVersion);
            }

            Assert.Equal(["1", "2"], versions.Order()); // twelve keys reach both versions
        }
        finally
        {
            using var deleted = await http.DeleteAsync(new Uri("/models/alpha/traffic", UriKind.Relative));
        }
    }

    [Fact]
    public async Task Errors_are_status_codes_from_the_one_error_map()
    {
        var client = Client();
        async Task<RpcException> Refused(ModelInferRequest request, CallOptions options = default) =>
            await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(request, options));

        Assert.Equal(StatusCode.NotFound, (await Refused(Images("nope", TestImages.FashionImage(0)))).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Refused(Images("alpha", "hello"u8.ToArray()))).StatusCode);
        var misnamed = Images("alpha", TestImages.FashionImage(0));
        misnamed.Inputs[0].Name = "nope";
        var error = await Refused(misnamed);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("'nope' is not an input", error.Status.Detail, StringComparison.Ordinal);

        var expired = await Refused(Images("alpha", TestImages.FashionImage(0)), new CallOptions(deadline: DateTime.UtcNow.AddMilliseconds(-1)));
        Assert.Equal(StatusCode.DeadlineExceeded, expired.StatusCode);
        var timeout = Images("alpha", TestImages.FashionImage(0));
        timeout.Parameters["timeout"] = new InferParameter { Int64Param = 1 };
        Assert.Equal(StatusCode.DeadlineExceeded, (await Refused(timeout)).StatusCode);

        await Assert.ThrowsAsync<RpcException>(async () => await client.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = "alpha" }));
    }

    [Fact]
    public async Task Keys_come_as_metadata()
    {
        using var keyed = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Security:ApiKeys:0"] = "grpc-key-0123456789",
            ["Security:ProtectPredict"] = "true",
        }, fixture.Factory.Home);
        var client = Client(keyed);
        var request = Images("alpha", TestImages.FashionImage(0));
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(request))).StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(async () =>
            await client.ModelInferAsync(request, new Metadata { { "x-api-key", "wrong" } }))).StatusCode);
        var answered = await client.ModelInferAsync(request, new Metadata { { "authorization", "Bearer grpc-key-0123456789" } });
        Assert.Equal("alpha", answered.ModelName);
    }
}
