using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>
/// Serves a version with TorchSharp: its own network instance in eval mode (never the one being trained), each pass
/// in one dispose scope under inference mode, outputs copied to managed arrays before the scope ends.
/// </summary>
public sealed class TorchModelRunner(ImageClassifier network, ModelMetadata metadata, Device device) : IModelRunner
{
    public const string EngineName = "torch";

    public string Engine => EngineName;

    public string Device { get; } = device.ToString();

    public ImageClassifier Network => network;

    public float[] Run(IReadOnlyList<InferenceInput> inputs, int threads)
    {
        TorchRuntime.UseThreads(threads);
        var c = metadata.InputChannels;
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        Tensor input;
        if (inputs[0].Floats is not null)
        {
            var size = metadata.ImageSize;
            var flat = new float[inputs.Count * c * size * size];
            for (var i = 0; i < inputs.Count; i++)
            {
                inputs[i].Floats!.CopyTo(flat, i * c * size * size);
            }

            input = tensor(flat, [inputs.Count, c, size, size]).to(device);
        }
        else
        {
            int h = metadata.Preprocessing.NativeHeight, w = metadata.Preprocessing.NativeWidth;
            var flat = new byte[inputs.Count * c * h * w];
            for (var i = 0; i < inputs.Count; i++)
            {
                inputs[i].Bytes!.CopyTo(flat, i * c * h * w);
            }

            input = Preprocess.ToNetworkInput(tensor(flat, [inputs.Count, c, h, w], dtype: ScalarType.Byte).to(device), metadata.ImageSize);
        }

        var probabilities = nn.functional.softmax(network.forward(input), 1).cpu();
        return probabilities.data<float>().ToArray();
    }

    public void Dispose() => network.Dispose();
}
