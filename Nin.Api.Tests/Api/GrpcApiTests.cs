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
