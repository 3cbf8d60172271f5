using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using InferenceSession = Microsoft.ML.OnnxRuntime.InferenceSession;
using Nin.Api.Models;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Interop;
using Nin.Model.Network;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Api;

/// <summary>The PyTorch fixture made by Fixtures/pytorch/make_fixture.py: d2l's NiN state_dict and PyTorch's outputs.</summary>
public sealed class PyTorchFixture
{
    public static string Folder => Path.Combine(TestPaths.RepoRoot, "Nin.Api.Tests", "Fixtures", "pytorch");

    public static byte[] Weights => File.ReadAllBytes(Path.Combine(Folder, "nin_fashion_mnist.pt"));

    public static JsonElement Expected { get; } = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "expected.json"))).RootElement;

    public static int ImageSize => Expected.GetProperty("imageSize").GetInt32();

    public static string ClassesJson => Expected.GetProperty("classes").GetRawText();

    public static int[] Indices => Expected.GetProperty("testIndices").EnumerateArray().Select(e => e.GetInt32()).ToArray();

    public static float[][] Probabilities =>
        Expected.GetProperty("probabilities").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ModelTransferApiTests : IDisposable
{
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" });

    /// <summary>What the fixture (d2l's NiN, 1 channel, 10 classes) holds.</summary>
    internal static StateDictSchema D2lSchema { get; } = new(NinLayers.D2l(1, 10));

    public void Dispose() => factory.Dispose();

    internal static MultipartFormDataContent ImportForm(byte[] weights, string fileName, string? classes = null, int? imageSize = null, params (string Key, string Value)[] extra)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(weights);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "weights", fileName);
        form.Add(new StringContent(classes ?? PyTorchFixture.ClassesJson), "classes");
        form.Add(new StringContent((imageSize ?? PyTorchFixture.ImageSize).ToString(System.Globalization.CultureInfo.InvariantCulture)), "imageSize");
        foreach (var (key, value) in extra)
        {
            form.Add(new StringContent(value), key);
        }

        return form;
    }

    private async Task<ModelVersionResponse> ImportAsync(HttpClient client, string name, byte[] weights, string fileName)
    {
        using var form = ImportForm(weights, fileName);
        using var response = await client.PostAsync(new Uri($"/models/{name}/versions", UriKind.Relative), form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var body = (await response.Content.ReadFromJsonAsync<ModelVersionResponse>(ModelMetadata.JsonOptions))!;
        Assert.Equal($"/models/{name}/versions/{body.Version}", response.Headers.Location!.OriginalString);
        return body;
    }

    private static void AssertAgrees(float[][] expected, IReadOnlyList<float[]> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (var i = 0; i < expected.Length; i++)
        {
            var diff = expected[i].Zip(actual[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff <= 1e-5, $"{what}, image {i}: max |PyTorch - Nin| = {diff}");
        }
    }

    private static async Task<float[][]> PredictAsync(HttpClient client, string name, int version)
    {
        using var form = PredictApiTests.Form(PyTorchFixture.Indices.Select(PredictApiTests.Png).ToArray());
        using var response = await client.PostAsync(new Uri($"/predict?model={name}&version={version}&topK=10&invert=false", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = (await response.Content.ReadFromJsonAsync<PredictResponse>())!;
        return body.Predictions.Select(p => p.Top.OrderBy(t => t.Index).Select(t => (float)t.Probability).ToArray()).ToArray();
    }

    [Fact]
    public async Task A_d2l_pytorch_state_dict_imported_through_the_api_gives_pytorchs_answers()
    {
        using var client = factory.CreateClient();
        var version = await ImportAsync(client, "d2l", PyTorchFixture.Weights, "nin_fashion_mnist.pt");
        Assert.Equal(1, version.Version);
        Assert.Equal(PyTorchFixture.ImageSize, version.ImageSize);
        Assert.Equal("pytorch", version.Metadata.ImportedFrom!.Format);
        Assert.Equal("light-on-dark", version.Metadata.Preprocessing.Foreground);

        // Served (ONNX Runtime on this CPU), from PNG uploads of the same test images PyTorch saw.
        AssertAgrees(PyTorchFixture.Probabilities, await PredictAsync(client, "d2l", 1), "/predict");

        // And TorchSharp on the stored checkpoint.
        var (network, metadata) = Checkpoint.Load(Path.Combine(factory.Home, "models", "d2l", "1"));
        using (network)
        using (var scope = NewDisposeScope())
        using (inference_mode())
        {
            var pixels = PyTorchFixture.Indices.SelectMany(i => TestImages.FashionTest.Pixels.AsSpan(i * 784, 784).ToArray()).ToArray();
            var input = Preprocess.ToNetworkInput(tensor(pixels, [PyTorchFixture.Indices.Length, 1, 28, 28], ScalarType.Byte), metadata.ImageSize);
            var probabilities = nn.functional.softmax(network.forward(input), 1).data<float>().ToArray();
            AssertAgrees(PyTorchFixture.Probabilities, probabilities.Chunk(10).ToArray(), "TorchSharp");
        }

        // The ONNX export of the imported version gives PyTorch's answers in ONNX Runtime too.
        var onnx = await client.GetByteArrayAsync(new Uri("/models/d2l/versions/1/export?format=onnx", UriKind.Relative));
        using var session = new InferenceSession(onnx);
        var floats = new float[PyTorchFixture.Indices.Length * PyTorchFixture.ImageSize * PyTorchFixture.ImageSize];
        var per = PyTorchFixture.ImageSize * PyTorchFixture.ImageSize;
        for (var k = 0; k < PyTorchFixture.Indices.Length; k++)
        {
            ManagedPreprocess.ToNetworkInput(TestImages.FashionTest.Pixels.AsSpan(PyTorchFixture.Indices[k] * 784, 784), 1, 28, 28, PyTorchFixture.ImageSize, floats.AsSpan(k * per, per));
        }

        var ort = Model.OnnxExportTests.Run(session, floats, [PyTorchFixture.Indices.Length, 1, PyTorchFixture.ImageSize, PyTorchFixture.ImageSize]);
        AssertAgrees(PyTorchFixture.Probabilities, ort.Chunk(10).ToArray(), "exported ONNX");
    }

    [Fact]
    public async Task Exports_use_d2l_key_names_and_import_back_to_the_same_answers()
    {
        using var client = factory.CreateClient();
        await ImportAsync(client, "roundtrip", PyTorchFixture.Weights, "nin.pth");
        var original = PyTorchWeights.Read(new MemoryStream(PyTorchFixture.Weights), D2lSchema);

        using var pt = await client.GetAsync(new Uri("/models/roundtrip/versions/1/export?format=pytorch", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, pt.StatusCode);
        Assert.Equal("roundtrip-v1.pt", pt.Content.Headers.ContentDisposition!.FileName);
        var ptBytes = await pt.Content.ReadAsByteArrayAsync();
        var fromPt = PyTorchWeights.Read(new MemoryStream(ptBytes), D2lSchema);
        Assert.Equal(PyTorchFixture.Expected.GetProperty("keys").EnumerateArray().Select(k => k.GetString()), fromPt.Select(t => t.Name));
        Assert.All(fromPt.Zip(original), p => Assert.Equal(p.Second.Values, p.First.Values));

        var st = await client.GetByteArrayAsync(new Uri("/models/roundtrip/versions/1/export?format=safetensors", UriKind.Relative));
        var fromSt = Safetensors.Read(st, D2lSchema);
        Assert.Equal(fromPt.Select(t => t.Name), fromSt.Select(t => t.Name));
        Assert.All(fromSt.Zip(original), p => Assert.Equal(p.Second.Values, p.First.Values));
        var headerLength = (int)BitConverter.ToUInt64(st, 0);
        var header = JsonDocument.Parse(st.AsMemory(8, headerLength)).RootElement;
        Assert.Equal(PyTorchFixture.ClassesJson.Replace("\n", "").Replace(" ", ""), header.GetProperty("__metadata__").GetProperty("classes").GetString()!.Replace(" ", ""));
        Assert.Equal("F32", header.GetProperty("0.0.weight").GetProperty("dtype").GetString());

        var v2 = await ImportAsync(client, "roundtrip", ptBytes, "exported.pt");
        var v3 = await ImportAsync(client, "roundtrip", st, "exported.safetensors");
        Assert.Equal("safetensors", v3.Metadata.ImportedFrom!.Format);
        AssertAgrees(PyTorchFixture.Probabilities, await PredictAsync(client, "roundtrip", v2.Version), "re-imported .pt");
        AssertAgrees(PyTorchFixture.Probabilities, await PredictAsync(client, "roundtrip", v3.Version), "re-imported safetensors");

        using var bad = await client.GetAsync(new Uri("/models/roundtrip/versions/1/export?format=tflite", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var missing = await client.GetAsync(new Uri("/models/roundtrip/versions/9/export", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task The_projects_own_key_names_are_accepted()
    {
        using var client = factory.CreateClient();
        var layers = NinLayers.D2l(1, 10);
        var own = NinLayers.Parameters(layers).Zip(PyTorchWeights.Read(new MemoryStream(PyTorchFixture.Weights), D2lSchema))
            .Select(p => p.Second with { Name = p.First.OwnKey["net.".Length..] }).ToArray();
        using var buffer = new MemoryStream();
        Safetensors.Write(own, buffer);
        var version = await ImportAsync(client, "own", buffer.ToArray(), "own.safetensors");
        AssertAgrees(PyTorchFixture.Probabilities, await PredictAsync(client, "own", version.Version), "own names");
    }

    [Fact]
    public async Task A_nin_bn_version_exports_as_onnx_but_has_no_pytorch_form()
    {
        using var client = factory.CreateClient();
        using (var network = new NinNetwork(1, 10, batchNorm: true))
        {
            new ModelStore(Path.Combine(factory.Home, "models")).Add(network, new ModelMetadata
            {
                Name = "bn", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = 67, Preprocessing = new PreprocessingInfo(),
            }, activate: false);
        }

        using var onnx = await client.GetAsync(new Uri("/models/bn/versions/1/export?format=onnx", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, onnx.StatusCode);
        using var session = new InferenceSession(await onnx.Content.ReadAsByteArrayAsync());
        Assert.Equal("nin-bn", session.ModelMetadata.CustomMetadataMap["architecture"]);
        foreach (var format in new[] { "pytorch", "safetensors" })
        {
            using var refused = await client.GetAsync(new Uri($"/models/bn/versions/1/export?format={format}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("nin-bn", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("missing", "Missing key '4.2.bias'")]
    [InlineData("extra", "Unexpected key '8.weight'")]
    [InlineData("shape", "Key '2.0.weight' has shape [256, 96, 3, 3]")]
    public async Task Weights_that_do_not_fit_are_refused_naming_the_first_bad_key(string defect, string message)
    {
        using var client = factory.CreateClient();
        var tensors = PyTorchWeights.Read(new MemoryStream(PyTorchFixture.Weights), D2lSchema).ToList();
        switch (defect)
        {
            case "missing":
                tensors.RemoveAll(t => t.Name == "4.2.bias");
                break;
            case "extra":
                tensors.Add(new NamedTensor("8.weight", [2], [1f, 2f]));
                break;
            default:
                var index = tensors.FindIndex(t => t.Name == "2.0.weight");
                tensors[index] = new NamedTensor("2.0.weight", [256, 96, 3, 3], new float[256 * 96 * 9]);
                break;
        }

        using var buffer = new MemoryStream();
        Safetensors.Write(tensors, buffer);
        using var form = ImportForm(buffer.ToArray(), "bad.safetensors");
        using var response = await client.PostAsync(new Uri("/models/bad/versions", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(message, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty((await client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative))).GetProperty("models").EnumerateArray());
    }

    [Fact]
    public async Task Wrong_class_count_bad_fields_and_non_weight_files_are_400s()
    {
        using var client = factory.CreateClient();
        async Task<string> Refused(MultipartFormDataContent form)
        {
            using (form)
            {
                using var response = await client.PostAsync(new Uri("/models/x/versions", UriKind.Relative), form);
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!;
            }
        }

        Assert.Contains("'7.0.weight' has shape [10, 384, 3, 3]", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", classes: """["a","b","c"]""")), StringComparison.Ordinal);
        Assert.Contains("'0.0.weight' has shape [96, 1, 11, 11]", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", extra: ("channels", "3"))), StringComparison.Ordinal);
        Assert.Contains("classes", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", classes: "not json")), StringComparison.Ordinal);
        Assert.Contains("imageSize", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", imageSize: 20)), StringComparison.Ordinal);
        Assert.Contains("architecture", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", extra: ("architecture", "resnet"))), StringComparison.Ordinal);
        Assert.Contains("foreground", await Refused(ImportForm(PyTorchFixture.Weights, "a.pt", extra: ("foreground", "sideways"))), StringComparison.Ordinal);
        Assert.Contains("safetensors", await Refused(ImportForm("hello, not weights"u8.ToArray(), "a.pt")), StringComparison.Ordinal);
        var truncated = PyTorchFixture.Weights[..4096];
        await Refused(ImportForm(truncated, "a.pt"));

        using var json = await client.PostAsJsonAsync(new Uri("/models/x/versions", UriKind.Relative), new { weights = "x" });
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);

        // The service still works.
        await ImportAsync(client, "after", PyTorchFixture.Weights, "nin.pt");
    }
}
