using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.ML.OnnxRuntime;
using Nin.Api.Models;
using Nin.Api.Serving;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Interop;
using ModelMetadata = Nin.Model.Checkpoints.ModelMetadata;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Model.Training;
using Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nin.Api.Tests.Model;

/// <summary>
/// A third, small architecture described outside Nin.Model: one NiN block (3×3 conv, two 1×1 convs, ReLU after each),
/// a 3×3/2 max-pool, a 1×1 class convolution, global average pooling. Its PyTorch form would be
/// <c>nn.Sequential(nn.Sequential(conv, relu, conv, relu, conv, relu), MaxPool2d(3, 2), conv, AdaptiveAvgPool2d(1), Flatten())</c>,
/// so its layer keys are <c>0.0</c>, <c>0.2</c>, <c>0.4</c> and <c>2</c>.
/// </summary>
internal sealed class TinyNin : ImageClassifier
{
    public const string ArchitectureName = "tiny-nin";
    public const int Width = 8;

    private readonly Sequential net;

    public TinyNin(int inputChannels, int classes)
        : base("TinyNin", ArchitectureName, inputChannels, classes)
    {
        net = Sequential(
            ("block", Sequential(
                ("0", Conv2d(inputChannels, Width, 3, padding: 1)),
                ("1", ReLU()),
                ("2", Conv2d(Width, Width, 1)),
                ("3", ReLU()),
                ("4", Conv2d(Width, Width, 1)),
                ("5", ReLU()))),
            ("pool", MaxPool2d(3, stride: 2)),
            ("classes", Conv2d(Width, classes, 1)),
            ("gap", AdaptiveAvgPool2d(1)),
            ("flatten", Flatten()));
        RegisterComponents();
    }

    public static IReadOnlyList<NinLayer> Layers(int inputChannels, int classes) =>
    [
        new ConvLayer("0.0", "net.block.0", inputChannels, Width, 3, 1, 1),
        new ReluLayer(),
        new ConvLayer("0.2", "net.block.2", Width, Width, 1, 1, 0),
        new ReluLayer(),
        new ConvLayer("0.4", "net.block.4", Width, Width, 1, 1, 0),
        new ReluLayer(),
        new MaxPoolLayer(3, 2),
        new ConvLayer("2", "net.classes", Width, classes, 1, 1, 0),
        new GlobalAveragePoolLayer(),
        new FlattenLayer(),
    ];

    /// <summary>The description a host registers: everything else (smallest input, parameters, memory) comes from the layers.</summary>
    public static NetworkArchitecture Describe() => new(
        ArchitectureName,
        "A one-block NiN for tests.",
        (c, k) => new TinyNin(c, k),
        Layers,
        maxInputSize: 64,
        pyTorchWeights: true);

    public override Tensor forward(Tensor input) => net.forward(input);
}

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class ArchitectureRegistryTests
{
    [Fact]
    public void An_unknown_architecture_is_refused_never_treated_as_nin()
    {
        Assert.Null(NetworkArchitectures.Find(TinyNin.ArchitectureName));
        Assert.Throws<ArgumentException>(() => NetworkArchitectures.Get(TinyNin.ArchitectureName));
        Assert.Throws<ArgumentException>(() => NinLayers.For("vgg", 1, 10));

        // A network whose architecture is not registered has no layer description: no export, no weights, no checkpoint.
        using var network = new TinyNin(1, 3);
        var metadata = new ModelMetadata { Name = "tiny", Architecture = TinyNin.ArchitectureName, ClassNames = ["a", "b", "c"], ImageSize = 16, Preprocessing = new PreprocessingInfo() };
        var ex = Assert.Throws<ArgumentException>(() => OnnxExporter.Export(network, metadata));
        Assert.Contains("tiny-nin", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => NinWeights.Read(network));
        Assert.Throws<ArgumentException>(() => NinWeights.Write(network, []));
        Assert.Throws<ArgumentNullException>(() => TrainingMemory.EstimateBytes(null!, 1, 96));
    }

    [Fact]
    public void A_registered_architecture_is_known_by_name_until_withdrawn_and_a_name_cannot_be_taken_twice()
    {
        var before = NetworkArchitectures.Names;
        using (NetworkArchitectures.Register(TinyNin.Describe()))
        {
            Assert.Equal([.. before, TinyNin.ArchitectureName], NetworkArchitectures.Names);
            var tiny = NetworkArchitectures.Get("Tiny-NIN");
            Assert.Equal(3, tiny.MinInputSize); // 3×3 pad 1 keeps the side; the 3×3/2 pool needs 3
            Assert.Equal(64, tiny.MaxInputSize);
            Assert.True(tiny.PyTorchWeights);
            Assert.Equal(TinyNin.Layers(3, 5), tiny.Layers(3, 5));
            using (var net = tiny.Create(3, 5))
            {
                Assert.Equal(tiny.ParameterCount(3, 5), net.parameters().Sum(p => p.numel()));
            }

            Assert.True(tiny.BytesPerImage(64) > tiny.BytesPerImage(16));
            Assert.Equal(NinLayers.TrainingBytesPerImage(TinyNin.Layers(1, 10), 64, 1), tiny.BytesPerImage(64)); // its own memory model, not NiN's
            Assert.Equal(32 * tiny.BytesPerImage(16), TrainingMemory.EstimateBytes(tiny, 32, 16));
            Assert.Throws<InvalidOperationException>(() => NetworkArchitectures.Register(TinyNin.Describe()));
            Assert.Throws<InvalidOperationException>(() => NetworkArchitectures.Register(new NetworkArchitecture(
                NetworkArchitectures.NinName, "again", (c, k) => new NinNetwork(c, k), NinLayers.D2l, 1024)));
            Assert.Throws<ArgumentOutOfRangeException>(() => tiny.EnsureImageSize(65));

            // A builder that makes some other network (here a NiN) would be recorded and exported as that one: refused.
            var pretender = new NetworkArchitecture("pretender", "builds a NiN", (c, k) => new NinNetwork(c, k), TinyNin.Layers, 64);
            Assert.Contains("'nin'", Assert.Throws<InvalidOperationException>(() => pretender.Create(1, 10)).Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, NetworkArchitectures.Names);
        Assert.Null(NetworkArchitectures.Find(TinyNin.ArchitectureName));
    }

    [Fact]
    public void The_nins_describe_themselves_and_only_d2ls_exchanges_pytorch_weights()
    {
        Assert.Equal(NinLayers.D2l(1, 10), NetworkArchitectures.Nin.Layers(1, 10));
        Assert.Equal(NinLayers.BatchNormed(3, 4), NetworkArchitectures.NinBn.Layers(3, 4));
        Assert.True(NetworkArchitectures.Nin.PyTorchWeights);
        Assert.False(NetworkArchitectures.NinBn.PyTorchWeights);

        // The figures derived from a layer description agree with the NiN's own arithmetic.
        Assert.Equal(NinGeometry.ParameterCount(1, 10, batchNorm: false), NinLayers.ParameterCount(NinLayers.D2l(1, 10)));
        Assert.Equal(NinGeometry.ParameterCount(3, 7, batchNorm: true), NinLayers.ParameterCount(NinLayers.BatchNormed(3, 7)));
        Assert.Equal(1, NinLayers.OutputSide(NinLayers.D2l(1, 10), NinGeometry.MinimumImageSize));
        Assert.Equal(0, NinLayers.OutputSide(NinLayers.D2l(1, 10), NinGeometry.MinimumImageSize - 1));
    }
}

/// <summary>
/// Issue 25: a third architecture registered before the host starts is trained through POST /train, exported as ONNX by
/// its own layers, exported and imported back as safetensors, and served by both engines.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ThirdArchitectureTests : IDisposable
{
    private const int ImageSize = 16;
    private readonly IDisposable registration = NetworkArchitectures.Register(TinyNin.Describe());

    public void Dispose() => registration.Dispose();

    private static async Task<PredictResponse> PredictAsync(HttpClient client, string query, params int[] indices)
    {
        using var form = PredictApiTests.Form(indices.Select(PredictApiTests.Png).ToArray());
        using var response = await client.PostAsync(new Uri("/predict" + query, UriKind.Relative), form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<PredictResponse>())!;
    }

    private static void AssertSameAnswers(PredictResponse expected, PredictResponse actual, string what)
    {
        Assert.Equal(expected.Predictions.Count, actual.Predictions.Count);
        foreach (var (e, a) in expected.Predictions.Zip(actual.Predictions))
        {
            var diff = e.Top.OrderBy(t => t.Index).Zip(a.Top.OrderBy(t => t.Index), (x, y) => Math.Abs(x.Probability - y.Probability)).Max();
            Assert.True(diff <= 1e-4, $"{what}: max difference {diff}");
        }
    }

    [Fact]
    public async Task A_third_architecture_trains_exports_imports_and_is_served_by_both_engines()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" });
        using var client = factory.CreateClient();

        // The registry as the API shows it.
        var recipes = await client.GetStringAsync(new Uri("/train/recipes", UriKind.Relative));
        Assert.Contains("\"tiny-nin\"", recipes, StringComparison.Ordinal);

        // Trained through the API.
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = "fashion-mnist", architecture = "tiny-nin", epochs = 1, batchSize = 32, imageSize = ImageSize, seed = 5,
            maxTrainImages = 128, maxTestImages = 32, modelName = "tiny", activate = true,
        });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        var accepted = (await response.Content.ReadFromJsonAsync<TrainAccepted>(TrainingApiTests.Json))!;
        var job = await TrainingApiTests.WaitForAsync(client, accepted.JobId, j => j.FinishedAt is not null, TimeSpan.FromMinutes(3));
        Assert.True(job.Status == JobStatus.Succeeded, job.Error);
        Assert.Equal("tiny-nin", job.Request.Architecture);
        Assert.Single(job.Epochs);
        var trained = (await client.GetFromJsonAsync<ModelVersionResponse>(new Uri($"/models/tiny/versions/{job.ModelVersion}", UriKind.Relative), ModelMetadata.JsonOptions))!;
        Assert.Equal("tiny-nin", trained.Metadata.Architecture);
        var classes = trained.Classes;
        Assert.Equal(10, classes.Count);

        // ONNX by the architecture's own layers: four convolutions of its shapes, one max-pool, not NiN's twelve.
        var onnx = await client.GetByteArrayAsync(new Uri($"/models/tiny/versions/{job.ModelVersion}/export?format=onnx", UriKind.Relative));
        var model = ModelProto.Parser.ParseFrom(onnx);
        Assert.Equal(
            ["Conv", "Relu", "Conv", "Relu", "Conv", "Relu", "MaxPool", "Conv", "GlobalAveragePool", "Flatten", "Softmax"],
            model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(
            TinyNin.Layers(1, 10).OfType<ConvLayer>().SelectMany(c => new[] { $"{c.Key}.weight", $"{c.Key}.bias" }),
            model.Graph.Initializer.Select(i => i.Name));
        Assert.Equal([TinyNin.Width, 1, 3, 3], model.Graph.Initializer.Single(i => i.Name == "0.0.weight").Dims);
        Assert.Equal([10, TinyNin.Width, 1, 1], model.Graph.Initializer.Single(i => i.Name == "2.weight").Dims);
        Assert.Equal("tiny-nin", model.MetadataProps.Single(p => p.Key == "architecture").Value);
        using (var session = new InferenceSession(onnx))
        {
            var probabilities = OnnxExportTests.Run(session, new float[2 * ImageSize * ImageSize], [2, 1, ImageSize, ImageSize]);
            Assert.Equal(20, probabilities.Length);
        }

        // Its weights under its PyTorch keys, imported back as a new version of the same architecture.
        var schema = new StateDictSchema(TinyNin.Layers(1, 10));
        var pytorch = await client.GetByteArrayAsync(new Uri($"/models/tiny/versions/{job.ModelVersion}/export?format=pytorch", UriKind.Relative));
        Assert.Equal(["0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias", "0.4.weight", "0.4.bias", "2.weight", "2.bias"],
            PyTorchWeights.Read(new MemoryStream(pytorch), schema).Select(t => t.Name));
        var safetensors = await client.GetByteArrayAsync(new Uri($"/models/tiny/versions/{job.ModelVersion}/export?format=safetensors", UriKind.Relative));
        Assert.Equal(schema.TensorCount, Safetensors.Read(safetensors, schema).Count);
        using var form = ModelTransferApiTests.ImportForm(safetensors, "tiny.safetensors", System.Text.Json.JsonSerializer.Serialize(classes), ImageSize, extra: [("architecture", "tiny-nin")]);
        using var imported = await client.PostAsync(new Uri("/models/tiny/versions", UriKind.Relative), form);
        Assert.True(imported.StatusCode == HttpStatusCode.Created, await imported.Content.ReadAsStringAsync());
        var copy = (await imported.Content.ReadFromJsonAsync<ModelVersionResponse>(ModelMetadata.JsonOptions))!;
        Assert.Equal("tiny-nin", copy.Metadata.Architecture);
        Assert.Equal("safetensors", copy.Metadata.ImportedFrom!.Format);

        // Too large for it: its own limit, not NiN's 1024.
        using var tooLarge = ModelTransferApiTests.ImportForm(safetensors, "tiny.safetensors", System.Text.Json.JsonSerializer.Serialize(classes), 65, extra: [("architecture", "tiny-nin")]);
        using var refused = await client.PostAsync(new Uri("/models/tiny/versions", UriKind.Relative), tooLarge);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("3 to 64", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Served: ONNX Runtime (auto on a CPU) and TorchSharp, the trained and the imported version alike, with its classes.
        int[] images = [0, 1, 2, 3];
        var ort = await PredictAsync(client, $"?model=tiny&version={job.ModelVersion}&topK=10", images);
        Assert.Equal(OnnxModelRunner.EngineName, ort.Engine);
        Assert.All(ort.Predictions, p => Assert.Contains(p.Label, classes));
        Assert.All(ort.Predictions, p => Assert.Equal(10, p.Top.Count));
        AssertSameAnswers(ort, await PredictAsync(client, $"?model=tiny&version={copy.Version}&topK=10", images), "imported, ONNX Runtime");

        using var torchFactory = new NinApiFactory(
            new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false", ["Serving:Engine"] = "torch" },
            factory.Home);
        using var torchClient = torchFactory.CreateClient();
        var torch = await PredictAsync(torchClient, $"?model=tiny&version={job.ModelVersion}&topK=10", images);
        Assert.NotEqual(OnnxModelRunner.EngineName, torch.Engine);
        Assert.Equal(ort.Predictions.Select(p => p.Label), torch.Predictions.Select(p => p.Label));
        AssertSameAnswers(ort, torch, "TorchSharp");
        AssertSameAnswers(ort, await PredictAsync(torchClient, $"?model=tiny&version={copy.Version}&topK=10", images), "imported, TorchSharp");
    }
}
