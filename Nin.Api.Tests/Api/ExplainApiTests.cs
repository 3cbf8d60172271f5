using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Serving;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>
/// <c>POST /predict?explain=cam</c> against PyTorch: Fixtures/pytorch/make_cam_fixture.py computed CAM and Grad-CAM of
/// d2l's NiN with the weights of nin_fashion_mnist.pt, by its own hooks, at three input sizes that call for different
/// methods; the same weights imported here must give the same maps (Pearson correlation at least 0.99) through the API.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ExplainApiTests : IDisposable
{
    private static readonly string[] StageNames = ["block1", "pool1", "block2", "pool2", "block3", "pool3", "dropout", "block4", "gap", "flatten"];
    private static readonly JsonElement Fixture = JsonDocument.Parse(File.ReadAllText(Path.Combine(PyTorchFixture.Folder, "cam_expected.json"))).RootElement;
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" });

    public void Dispose() => factory.Dispose();

    private static byte[][] Pngs()
    {
        var pixels = Convert.FromBase64String(Fixture.GetProperty("pixels").GetString()!);
        return [.. Enumerable.Range(0, pixels.Length / 784).Select(i => TestImages.Encode(pixels[(i * 784)..((i + 1) * 784)], 28, 28, SKEncodedImageFormat.Png))];
    }

    private static JsonElement Size(int imageSize) => Fixture.GetProperty("sizes").EnumerateArray().Single(s => s.GetProperty("imageSize").GetInt32() == imageSize);

    private static float[][] Maps(JsonElement size, string property) =>
        [.. size.GetProperty(property).EnumerateArray().Select(m => m.EnumerateArray().Select(v => v.GetSingle()).ToArray())];

    private static double Pearson(float[] a, float[] b)
    {
        double ma = a.Average(), mb = b.Average(), sab = 0, saa = 0, sbb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }

        return sab / Math.Sqrt(saa * sbb);
    }

    private async Task ImportAsync(HttpClient client, int imageSize)
    {
        using var form = ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin_fashion_mnist.pt", imageSize: imageSize);
        using var response = await client.PostAsync(new Uri($"/models/cam{imageSize}/versions", UriKind.Relative), form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    private static async Task<PredictResponse> ExplainAsync(HttpClient client, string query, params byte[][] pngs)
    {
        using var form = PredictApiTests.Form([.. pngs.Select((p, i) => ("images", $"img-{i}.png", p, "image/png"))]);
        using var response = await client.PostAsync(new Uri("/predict?invert=false&topK=1&explain=cam" + query, UriKind.Relative), form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Contains("explain;dur=", response.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
        return (await response.Content.ReadFromJsonAsync<PredictResponse>())!;
    }

    [Theory]
    [InlineData(72)] // Grad-CAM at the second NiN block (7×7)
    [InlineData(224)] // Grad-CAM at the third (12×12)
    [InlineData(320)] // CAM: the class maps are 8×8
    public async Task Maps_agree_with_pytorchs_own_cam_and_grad_cam_on_the_same_weights_and_images(int imageSize)
    {
        using var client = factory.CreateClient();
        await ImportAsync(client, imageSize);
        var expected = Size(imageSize);
        var pngs = Pngs();

        // The predicted class of each image, all in one request.
        var body = await ExplainAsync(client, $"&model=cam{imageSize}", pngs);
        var maps = Maps(expected, "maps");
        var classes = expected.GetProperty("classes").EnumerateArray().Select(c => c.GetInt32()).ToArray();
        var peaks = expected.GetProperty("peaks").EnumerateArray().Select(c => c.GetSingle()).ToArray();
        for (var i = 0; i < pngs.Length; i++)
        {
            var e = body.Predictions[i].Explanation!;
            Assert.Equal(expected.GetProperty("method").GetString(), e.Method);
            Assert.Equal(StageNames[expected.GetProperty("stage").GetInt32()], e.Layer);
            Assert.Equal((expected.GetProperty("width").GetInt32(), expected.GetProperty("height").GetInt32()), (e.Width, e.Height));
            Assert.Equal(classes[i], e.Index);
            Assert.Equal(body.Predictions[i].Index, e.Index);
            var r = Pearson(maps[i], e.Values);
            Assert.True(r >= 0.99, $"{imageSize} px, image {i}: Pearson {r:F4} with PyTorch's {e.Method}");
            Assert.True(Math.Abs(e.Peak - peaks[i]) <= 0.01 * peaks[i], $"{imageSize} px, image {i}: peak {e.Peak} vs PyTorch's {peaks[i]}");
            using var overlay = SKBitmap.Decode(Convert.FromBase64String(e.OverlayPng));
            Assert.Equal((imageSize, imageSize), (overlay.Width, overlay.Height));
        }

        // Another class asked for, by index: image i explained for class i % 10, as the fixture did.
        var requested = Maps(expected, "requestedMaps");
        var requestedPeaks = expected.GetProperty("requestedPeaks").EnumerateArray().Select(c => c.GetSingle()).ToArray();
        var compared = 0;
        for (var i = 0; i < pngs.Length; i++)
        {
            var e = (await ExplainAsync(client, $"&model=cam{imageSize}&explainClass={i % 10}", pngs[i])).Predictions[0].Explanation!;
            Assert.Equal(i % 10, e.Index);
            if (requestedPeaks[i] > 1e-4)
            {
                var r = Pearson(requested[i], e.Values);
                Assert.True(r >= 0.99, $"{imageSize} px, image {i}, class {i % 10}: Pearson {r:F4} with PyTorch's");
                compared++;
            }
            else
            {
                Assert.True(e.Peak <= 1e-3, $"PyTorch found no evidence for class {i % 10} in image {i}; Nin found {e.Peak}");
            }
        }

        Assert.True(compared >= 4, $"only {compared} requested-class maps had evidence to compare");
    }

    [Fact]
    public async Task KServe_v2_infer_with_the_explain_parameter_returns_the_maps_as_a_cam_output()
    {
        using var client = factory.CreateClient();
        await ImportAsync(client, 224);
        var expected = Size(224);
        var pngs = Pngs()[..2];
        var request = new
        {
            inputs = new[] { new { name = "images", shape = new[] { 2 }, datatype = "BYTES", data = pngs.Select(Convert.ToBase64String).ToArray() } },
            parameters = new Dictionary<string, object> { ["explain"] = "cam" },
        };
        using var response = await client.PostAsJsonAsync(new Uri("/v2/models/cam224/infer", UriKind.Relative), request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var cam = JsonDocument.Parse(body).RootElement.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "cam");
        Assert.Equal([2, 12, 12], cam.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Equal("grad-cam", cam.GetProperty("parameters").GetProperty("method").GetString());
        Assert.Equal("block3", cam.GetProperty("parameters").GetProperty("layer").GetString());
        var values = cam.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var maps = Maps(expected, "maps");
        for (var i = 0; i < 2; i++)
        {
            Assert.True(Pearson(maps[i], values[(i * 144)..((i + 1) * 144)]) >= 0.99);
        }

        var bad = new { inputs = request.inputs, parameters = new Dictionary<string, object> { ["explain"] = "saliency" } };
        using var refused = await client.PostAsJsonAsync(new Uri("/v2/models/cam224/infer", UriKind.Relative), bad);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("explain", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_class_by_name_is_explained_and_bad_explain_parameters_are_400s_naming_the_problem()
    {
        using var client = factory.CreateClient();
        await ImportAsync(client, 72);
        var png = Pngs()[0];

        var bag = (await ExplainAsync(client, "&model=cam72&explainClass=bag", png)).Predictions[0].Explanation!;
        Assert.Equal((8, "Bag"), (bag.Index, bag.Label));

        foreach (var (query, says) in new[]
        {
            ("explain=maybe", "explain must be cam"),
            ("explainClass=3", "needs explain=cam"),
            ("explain=cam&explainClass=zebra", "neither a class index"),
            ("explain=cam&explainClass=10", "neither a class index"),
        })
        {
            using var form = PredictApiTests.Form(("images", "a.png", png, "image/png"));
            using var response = await client.PostAsync(new Uri($"/predict?model=cam72&{query}", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
            Assert.Contains(says, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Without explain, no explanation and no explain timing.
        using var plain = PredictApiTests.Form(("images", "a.png", png, "image/png"));
        using var answer = await client.PostAsync(new Uri("/predict?model=cam72", UriKind.Relative), plain);
        Assert.Null((await answer.Content.ReadFromJsonAsync<PredictResponse>())!.Predictions[0].Explanation);
        Assert.DoesNotContain("explain;", answer.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
    }
}
