using Microsoft.ML.OnnxRuntime;
using ModelMetadata = Nin.Model.Checkpoints.ModelMetadata;
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
[HostTests]
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

    [Fact]
    public void A_version_quantized_once_serves_its_int8_file_and_gets_it_back_from_its_record_alone()
    {
        var directory = Directory.CreateTempSubdirectory("nin-int8-").FullName;
        try
        {
            foreach (var file in new[] { "model.json", "weights.bin" })
            {
                File.Copy(Path.Combine(OnnxExportTests.ShippedModel, file), Path.Combine(directory, file));
            }

            var metadata = Checkpoint.ReadMetadata(directory);
            Assert.Null(Int8Cache.ForServing(directory, metadata, 0.5).Path);
            var record = Int8Cache.Prepare(directory, FashionTrain.Value, TestImages.FashionTest.Take(300), new Int8Options { CalibrationImages = 64, Threads = 2 });
            Assert.Equal(64, record.Calibration.Images);
            Assert.Equal(300, record.Accuracy!.TestImages);
            Assert.Equal(Int8Quantizer.TensorsToCalibrate(File.ReadAllBytes(OnnxCache.Ensure(directory))).Count, record.Ranges.Count);
            var (path, reason) = Int8Cache.ForServing(directory, metadata, 100);
            Assert.Equal(Path.Combine(directory, record.File), path);
            Assert.Contains("on 300 test images", reason, StringComparison.Ordinal);

            // The record decides with the margin in force: a margin below the measured loss rules int8 out.
            var below = record.Accuracy.DropPoints - 0.01;
            if (below >= 0)
            {
                Assert.Null(Int8Cache.ForServing(directory, metadata, below).Path);
            }

            // An altered file is not served; the record alone makes the same graph again (no training images needed).
            File.WriteAllBytes(path!, [1, 2, 3]);
            Assert.Null(Int8Cache.ForServing(directory, metadata, 100).Path);
            Assert.True(Int8Cache.Restore(directory));
            Assert.Equal(record.GraphSha256, Int8Quantizer.GraphSha256(File.ReadAllBytes(path!)));
            Assert.NotNull(Int8Cache.ForServing(directory, metadata, 100).Path);

            // A record whose ranges no longer give the measured graph restores nothing.
            File.Delete(path!);
            var stale = record with { GraphSha256 = new string('0', 64) };
            File.WriteAllText(Path.Combine(directory, Int8Cache.RecordFile), System.Text.Json.JsonSerializer.Serialize(stale, ModelMetadata.JsonOptions));
            Assert.False(Int8Cache.Restore(directory));
            Assert.False(File.Exists(path));

            // A record made from other weights is not this version's.
            var other = metadata with { WeightsSha256 = new string('f', 64) };
            Assert.Null(Int8Cache.Read(directory, other));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void The_quantizer_walks_the_graph_so_nin_bn_goes_through_too()
    {
        manual_seed(5);
        using var network = new NinNetwork(1, 10, batchNorm: true);
        network.eval();
        var metadata = new ModelMetadata { Name = "bn", Architecture = "nin-bn", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = 67, Preprocessing = new PreprocessingInfo() };
        var fp32 = OnnxExporter.Export(network, metadata);
        var int8 = QuantizeWithSample(fp32, 67);
        var ops = OptimizedGraph(int8).Graph.Node.Select(n => n.OpType).ToList();

        // nin-bn has no ReLU after its class convolution: that one is quantized on its own output, and all 12 fuse.
        Assert.Equal(12, ops.Count(o => o is "QLinearConv" or "ConvInteger"));
        Assert.DoesNotContain("Conv", ops);
        Assert.Equal(64, Int8Accuracy.Measure(fp32, int8, TestImages.FashionTest.Take(64), 67, threads: 2).TestImages);
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
