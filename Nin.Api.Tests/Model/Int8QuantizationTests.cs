using Microsoft.ML.OnnxRuntime;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Onnx;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

/// <summary>
/// The int8 QDQ model Nin makes of a version: ONNX Runtime runs it with integer convolution kernels, its answers agree
/// with fp32 within the accuracy budget on real test images, and its record gates serving.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class Int8QuantizationTests
{
    private static readonly Lazy<ImageDataset> FashionTrain = new(() => BuiltInDatasets.Load(TestPaths.SharedDatasets, BuiltInDatasets.FashionMnist, maxTrain: 5000, maxTest: 1).Train);

    private static readonly Lazy<(byte[] Fp32, byte[] Int8)> Shipped = new(() =>
    {
        var (network, metadata) = Checkpoint.Load(OnnxExportTests.ShippedModel);
        using var _ = network;
        var fp32 = OnnxExporter.Export(network, metadata);
        return (fp32, QuantizeWithSample(fp32, metadata.ImageSize));
    });

    [Fact]
    public void The_quantized_graph_runs_on_integer_convolutions_in_onnx_runtime()
    {
        var (_, int8) = Shipped.Value;
        var optimized = OptimizedGraph(int8);
        var ops = optimized.Graph.Node.Select(n => n.OpType).ToList();

        // All 12 convolutions of NiN became integer kernels; none is left in float.
        Assert.Equal(12, ops.Count(o => o is "QLinearConv" or "ConvInteger"));
        Assert.DoesNotContain("Conv", ops);
        Assert.DoesNotContain("FusedConv", ops);

        // The pooling runs on the uint8 values: no dequantize/quantize pair around MaxPool survives.
        var producers = optimized.Graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        foreach (var pool in optimized.Graph.Node.Where(n => n.OpType == "MaxPool"))
        {
            Assert.NotEqual("DequantizeLinear", producers[pool.Input[0]].OpType);
        }

        // Weights travel as int8: the file is about a quarter of the fp32 one.
        var (fp32, _) = Shipped.Value;
        Assert.InRange(int8.Length, fp32.Length / 5, fp32.Length / 3);
    }

    [Fact]
    public void Int8_answers_agree_with_fp32_on_real_test_images_within_the_budget()
    {
        var (fp32, int8) = Shipped.Value;
        var test = TestImages.FashionTest.Take(2000);
        var accuracy = Int8Accuracy.Measure(fp32, int8, test, 96, threads: 2);

        Assert.Equal(2000, accuracy.TestImages);
        Assert.True(accuracy.Fp32 > 0.85, $"fp32 accuracy {accuracy.Fp32}");
        Assert.True(accuracy.DropPoints <= 0.5, $"int8 {accuracy.Int8:P2} vs fp32 {accuracy.Fp32:P2}");
        Assert.True(accuracy.Agreement >= 0.98, $"top-1 agreement {accuracy.Agreement:P2}");
        Assert.True(accuracy.MaxProbabilityDifference < 0.5, $"max |p_int8 - p_fp32| = {accuracy.MaxProbabilityDifference}");
        Assert.True(accuracy.MaxProbabilityDifference > 0, "the int8 model is not the fp32 one");
    }

    internal static byte[] QuantizeWithSample(byte[] fp32, int imageSize)
    {
        var train = FashionTrain.Value;
        var ranges = Int8Calibration.Calibrate(fp32, Int8Quantizer.TensorsToCalibrate(fp32), train, Int8Calibration.Sample(train.Count, 256, 0), imageSize, threads: 2);
        return Int8Quantizer.Quantize(fp32, ranges);
    }

    /// <summary>The graph ONNX Runtime actually runs, after its optimizations (written by SessionOptions.OptimizedModelFilePath).</summary>
    internal static ModelProto OptimizedGraph(byte[] model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"nin-optimized-{Guid.NewGuid():N}.onnx");
        try
        {
            using (var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, OptimizedModelFilePath = path })
            using (new InferenceSession(model, options))
            {
            }

            return ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
