using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>
/// Serves a version with TorchSharp: its own network instance in eval mode (never the one being trained), each pass
/// in one dispose scope under inference mode, outputs copied to managed arrays before the scope ends. With half
/// precision (<see cref="ServingOptions.Precision"/>) the weights and inputs are fp16 or bf16 and the class scores
/// are turned back into fp32 before the softmax.
/// </summary>
public sealed class TorchModelRunner : IModelRunner
{
    public const string EngineName = "torch";

    private readonly ImageClassifier network;
    private readonly ModelMetadata metadata;
    private readonly Device device;
    private readonly ScalarType precision;

    public TorchModelRunner(ImageClassifier network, ModelMetadata metadata, Device device, ScalarType precision = ScalarType.Float32)
    {
        this.network = network;
        this.metadata = metadata;
        this.device = device;
        this.precision = precision;
        Device = device.ToString();
        if (precision != ScalarType.Float32)
        {
            network.to(precision);
        }
    }

    /// <summary>The number format of the forward passes.</summary>
    public ScalarType Precision => precision;

    public string Engine => EngineName;

    public string Device { get; }

    public ImageClassifier Network => network;

    public float[] Run(IReadOnlyList<InferenceInput> inputs, int threads)
    {
        TorchRuntime.UseThreads(threads);
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var input = InputTensor(inputs, metadata, device);
        if (precision != ScalarType.Float32)
        {
            input = input.to(precision);
        }

        var probabilities = nn.functional.softmax(network.forward(input).to(ScalarType.Float32), 1).cpu();
        return probabilities.data<float>().ToArray();
    }

    /// <summary>The network's input [N, C, S, S] (fp32, 0–1) for the batcher's inputs: preprocessed bytes or the caller's floats.</summary>
    public static Tensor InputTensor(IReadOnlyList<InferenceInput> inputs, ModelMetadata metadata, Device device)
    {
        var c = metadata.InputChannels;
        if (inputs[0].Floats is not null)
        {
            var size = metadata.ImageSize;
            var flat = new float[inputs.Count * c * size * size];
            for (var i = 0; i < inputs.Count; i++)
            {
                inputs[i].Floats!.Value.Span.CopyTo(flat.AsSpan(i * c * size * size, c * size * size));
            }

            return tensor(flat, [inputs.Count, c, size, size]).to(device);
        }

        int h = metadata.Preprocessing.NativeHeight, w = metadata.Preprocessing.NativeWidth;
        var bytes = new byte[inputs.Count * c * h * w];
        for (var i = 0; i < inputs.Count; i++)
        {
            inputs[i].Bytes!.CopyTo(bytes, i * c * h * w);
        }

        return Preprocess.ToNetworkInput(tensor(bytes, [inputs.Count, c, h, w], dtype: ScalarType.Byte).to(device), metadata.ImageSize);
    }

    public void Dispose() => network.Dispose();
}
