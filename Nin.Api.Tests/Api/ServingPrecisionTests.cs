using System.Net;
using System.Net.Http.Json;
using Nin.Api.Serving;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Half-precision serving (<c>Serving:Precision</c>), checked against fp32 on real test images with the shipped model.
/// On CUDA it is the fast path; on this CPU the same code runs, so its accuracy can be checked here.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ServingPrecisionTests
{
    private const int Images = 64;

    private static NinApiFactory Start(string precision, string? engine = null)
    {
        var settings = new Dictionary<string, string?> { ["RateLimiting:Enabled"] = "false", ["Serving:Precision"] = precision };
        if (engine is not null)
        {
            settings["Serving:Engine"] = engine;
        }

        return new NinApiFactory(settings);
    }

    private static async Task<PredictResponse> PredictAsync(NinApiFactory factory)
    {
        using var client = factory.CreateClient();
        var all = new List<Prediction>();
        PredictResponse? last = null;
        for (var start = 0; start < Images; start += 16)
        {
            using var form = PredictApiTests.Form(Enumerable.Range(start, 16).Select(PredictApiTests.Png).ToArray());
            using var response = await client.PostAsync(new Uri("/predict?topK=10&invert=false", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            last = (await response.Content.ReadFromJsonAsync<PredictResponse>())!;
            all.AddRange(last.Predictions);
        }

        return last! with { Predictions = all };
    }

    [Theory]
    [InlineData(ServingPrecision.Bf16, 0.05)]
    [InlineData(ServingPrecision.Fp16, 0.01)]
    public async Task Half_precision_agrees_with_fp32_on_real_test_images(string precision, double tolerance)
    {
        using var fp32 = Start(ServingPrecision.Fp32, "torch");
        using var half = Start(precision);
        var a = await PredictAsync(fp32);
        var b = await PredictAsync(half);

        Assert.Equal("torch", b.Engine); // auto picks TorchSharp for half precision: ONNX Runtime serves fp32 and int8
        var sameLabel = 0;
        var maxDiff = 0.0;
        for (var i = 0; i < Images; i++)
        {
            var pa = a.Predictions[i].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            var pb = b.Predictions[i].Top.OrderBy(t => t.Index).Select(t => t.Probability).ToArray();
            Assert.Equal(10, pb.Length);
            Assert.InRange(pb.Sum(), 0.999, 1.001); // the softmax ran in fp32
            maxDiff = Math.Max(maxDiff, pa.Zip(pb, (x, y) => Math.Abs(x - y)).Max());
            sameLabel += a.Predictions[i].Index == b.Predictions[i].Index ? 1 : 0;
        }

        Assert.True(maxDiff > 0, $"{precision} gave exactly fp32's probabilities: the half-precision path did not run");
        Assert.True(maxDiff <= tolerance, $"{precision}: max |p - p_fp32| = {maxDiff:G3} > {tolerance}");
        Assert.True(sameLabel >= Images - 2, $"{precision}: {sameLabel}/{Images} labels as fp32");
    }

    [Theory]
    [InlineData("fp64", null, "Serving:Precision must be one of")]
    [InlineData("bf16", "onnxruntime", "ONNX Runtime serves fp32 and int8")]
    public void A_precision_the_engine_cannot_serve_stops_the_service_at_start(string precision, string? engine, string message)
    {
        using var factory = Start(precision, engine);
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        Assert.Contains(message, error.ToString(), StringComparison.Ordinal);
    }
}
