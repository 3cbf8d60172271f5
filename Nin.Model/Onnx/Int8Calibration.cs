using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Nin.Model.Data;
using Nin.Model.Training;
using Onnx;

namespace Nin.Model.Onnx;

/// <summary>
/// Activation ranges for <see cref="Int8Quantizer"/>: the fp32 model runs in ONNX Runtime (unoptimized, so every
/// intermediate tensor is the exported graph's own) over a sample of images with the serving preprocessing
/// (<see cref="ManagedPreprocess"/>), and each asked tensor's minimum and maximum are kept.
/// </summary>
public static class Int8Calibration
{
    private const int Batch = 16;

    /// <summary><paramref name="count"/> distinct indices of <paramref name="available"/>, drawn with <paramref name="seed"/>, in ascending order.</summary>
    public static int[] Sample(int available, int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count >= available)
        {
            return Enumerable.Range(0, available).ToArray();
        }

        var indices = Enumerable.Range(0, available).ToArray();
        new Random(seed).Shuffle(indices);
        return indices.AsSpan(0, count).ToArray().Order().ToArray();
    }

    /// <summary>The range of each of <paramref name="tensors"/> (graph inputs or node outputs) over the images at <paramref name="indices"/>.</summary>
    public static Dictionary<string, TensorRange> Calibrate(
        byte[] fp32Model, IReadOnlyList<string> tensors, ImageDataset images, IReadOnlyList<int> indices, int imageSize, int threads, CancellationToken cancellationToken = default)
    {
        var model = ModelProto.Parser.ParseFrom(fp32Model);
        var inputName = model.Graph.Input.Single().Name;
        var outputs = tensors.Where(t => t != inputName).ToArray();
        foreach (var tensor in outputs.Where(t => model.Graph.Output.All(o => o.Name != t)))
        {
            model.Graph.Output.Add(OnnxProto.Value(tensor, TensorProto.Types.DataType.Float));
        }

        using var options = OnnxSessions.CpuOptions(threads, GraphOptimizationLevel.ORT_DISABLE_ALL);
        using var session = new InferenceSession(model.ToByteArray(), options);
        var ranges = tensors.ToDictionary(t => t, _ => new TensorRange(float.PositiveInfinity, float.NegativeInfinity), StringComparer.Ordinal);
        for (var start = 0; start < indices.Count; start += Batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(Batch, indices.Count - start);
            var input = NetworkInput(images, indices.Skip(start).Take(n).ToArray(), imageSize);
            if (ranges.ContainsKey(inputName))
            {
                Widen(ranges, inputName, input);
            }

            using var value = OrtValue.CreateTensorValueFromMemory(input, [n, images.Channels, imageSize, imageSize]);
            using var run = new RunOptions();
            using var results = session.Run(run, [inputName], [value], outputs);
            for (var i = 0; i < outputs.Length; i++)
            {
                Widen(ranges, outputs[i], results[i].GetTensorDataAsSpan<float>());
            }
        }

        return ranges;
    }

    /// <summary>The images at <paramref name="indices"/> as the network's input [n, C, S, S], preprocessed as serving does.</summary>
    public static float[] NetworkInput(ImageDataset images, IReadOnlyList<int> indices, int imageSize)
    {
        var bytesPer = images.Channels * images.Height * images.Width;
        var per = images.Channels * imageSize * imageSize;
        var input = new float[indices.Count * per];
        for (var i = 0; i < indices.Count; i++)
        {
            ManagedPreprocess.ToNetworkInput(images.Pixels.AsSpan(indices[i] * bytesPer, bytesPer), images.Channels, images.Height, images.Width, imageSize, input.AsSpan(i * per, per));
        }

        return input;
    }

    private static void Widen(Dictionary<string, TensorRange> ranges, string tensor, ReadOnlySpan<float> values)
    {
        var (min, max) = ranges[tensor];
        foreach (var v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        ranges[tensor] = new TensorRange(min, max);
    }
}
