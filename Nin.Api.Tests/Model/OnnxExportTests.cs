using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

/// <summary>The shipped model exported as ONNX gives TorchSharp's answers in ONNX Runtime.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class OnnxExportTests
{
    internal static string ShippedModel => Path.Combine(TestPaths.RepoRoot, "Nin.Api", "DefaultModel", "fashion-mnist");

    [Fact]
    public void Onnx_runtime_agrees_with_torchsharp_on_real_test_images()
    {
        var (network, metadata) = Checkpoint.Load(ShippedModel);
        using var _ = network;
        var onnx = OnnxExporter.Export(network, metadata);
        using var session = new InferenceSession(onnx);

        const int n = 16;
        var s = metadata.ImageSize;
        using var scope = NewDisposeScope();
        using var bytes = tensor(TestImages.FashionTest.Pixels.AsSpan(0, n * 784).ToArray(), [n, 1, 28, 28], ScalarType.Byte);
        var input = Preprocess.ToNetworkInput(bytes, s);
        float[] expected;
        using (inference_mode())
        {
            expected = nn.functional.softmax(network.forward(input), 1).data<float>().ToArray();
        }

        // Batch 16, then the same images one by one: the batch dimension is dynamic.
        var floats = input.data<float>().ToArray();
        var batch = Run(session, floats, [n, 1, s, s]);
        Assert.Equal(n * 10, batch.Length);
        Assert.True(MaxAbsDiff(expected, batch) <= 1e-5, $"batch: max |ORT - Torch| = {MaxAbsDiff(expected, batch)}");
        for (var i = 0; i < 3; i++)
        {
            var one = Run(session, floats.AsSpan(i * s * s, s * s).ToArray(), [1, 1, s, s]);
            Assert.True(MaxAbsDiff(expected.AsSpan(i * 10, 10).ToArray(), one) <= 1e-5);
        }

        // The answers are the model's, not just equal: most of these real images are classified right.
        var correct = Enumerable.Range(0, n).Count(i => Int8Accuracy.ArgMax(batch.AsSpan(i * 10, 10)) == TestImages.FashionLabel(i));
        Assert.True(correct >= 12, $"{correct}/{n} correct");
    }

    [Fact]
    public void The_file_names_its_input_output_and_carries_the_metadata()
    {
        var (network, metadata) = Checkpoint.Load(ShippedModel);
        using var _ = network;
        using var session = new InferenceSession(OnnxExporter.Export(network, metadata));

        var input = Assert.Single(session.InputMetadata);
        Assert.Equal(OnnxExporter.InputName, input.Key);
        Assert.Equal(TensorElementType.Float, input.Value.ElementDataType);
        Assert.Equal([-1, 1, metadata.ImageSize, metadata.ImageSize], input.Value.Dimensions);
        Assert.Equal("N", input.Value.SymbolicDimensions[0]);
        var output = Assert.Single(session.OutputMetadata);
        Assert.Equal(OnnxExporter.OutputName, output.Key);
        Assert.Equal([-1, 10], output.Value.Dimensions);

        var props = session.ModelMetadata.CustomMetadataMap;
        Assert.Equal(metadata.ClassNames, JsonSerializer.Deserialize<string[]>(props["classes"]));
        var pre = JsonDocument.Parse(props["preprocessing"]).RootElement;
        Assert.Equal(28, pre.GetProperty("nativeWidth").GetInt32());
        Assert.Equal("light-on-dark", pre.GetProperty("foreground").GetString());
        Assert.Equal(metadata.Recipe!.LearningRate, JsonDocument.Parse(props["recipe"]).RootElement.GetProperty("learningRate").GetDouble());
        Assert.Equal(metadata.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture), props["image_size"]);
        Assert.Equal(metadata.Version, session.ModelMetadata.Version);
    }

    [Fact]
    public void Nin_bn_exports_with_its_batch_norm_folded_into_the_convolutions()
    {
        manual_seed(3);
        using var network = new NinNetwork(1, 10, batchNorm: true);
        using var scope = NewDisposeScope();
        const int s = 67;
        using var bytes = tensor(TestImages.FashionTest.Pixels.AsSpan(0, 8 * 784).ToArray(), [8, 1, 28, 28], ScalarType.Byte);
        var input = Preprocess.ToNetworkInput(bytes, s);

        // Running statistics far from BatchNorm's initial (0, 1), and affine parameters away from (1, 0), so folding matters.
        using (no_grad())
        {
            network.train();
            for (var i = 0; i < 3; i++)
            {
                network.forward(input * (i + 1));
            }

            foreach (var (name, parameter) in network.named_parameters().Where(p => p.name.Contains("bn", StringComparison.Ordinal)))
            {
                parameter.add_(rand_like(parameter) * 0.5);
            }
        }

        network.eval();
        float[] expected;
        using (inference_mode())
        {
            expected = nn.functional.softmax(network.forward(input), 1).data<float>().ToArray();
        }

        var metadata = new Nin.Model.Checkpoints.ModelMetadata { Name = "bn", Architecture = "nin-bn", ClassNames = Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames, ImageSize = s, Preprocessing = new PreprocessingInfo() };
        using var session = new InferenceSession(OnnxExporter.Export(network, metadata));
        var actual = Run(session, input.data<float>().ToArray(), [8, 1, s, s]);
        Assert.True(MaxAbsDiff(expected, actual) <= 1e-5, $"max |ORT - Torch| = {MaxAbsDiff(expected, actual)}");
        Assert.True(expected.Chunk(10).Select(p => p.Max()).Max() > 0.2, "the outputs are not near uniform, so the comparison means something");
        Assert.Equal("nin-bn", session.ModelMetadata.CustomMetadataMap["architecture"]);
    }

    internal static float[] Run(InferenceSession session, float[] input, int[] shape)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape.Select(d => (long)d).ToArray());
        using var outputs = session.Run(new RunOptions(), [OnnxExporter.InputName], [value], [OnnxExporter.OutputName]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    internal static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }
}
