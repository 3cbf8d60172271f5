using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>The benchmark's own copy of a model, timed on this thread on copies of one image, as an engine runs it.</summary>
internal interface IRawRunner : IDisposable
{
    /// <summary>
    /// Milliseconds per image of each pass of <paramref name="n"/> images, for about <paramref name="seconds"/>; with a
    /// <paramref name="gap"/>, this thread sleeps that long before each pass (untimed), as a lone client's request
    /// follows the idle time of its last answer's round trip.
    /// </summary>
    List<double> Time(int n, double seconds, TimeSpan gap = default);
}

internal static class RawTiming
{
    public static List<double> Repeat(int n, double seconds, Action pass, TimeSpan gap = default)
    {
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 3 || total.Elapsed.TotalSeconds < seconds)
        {
            if (gap > TimeSpan.Zero)
            {
                Thread.Sleep(gap);
            }

            var t = Stopwatch.GetTimestamp();
            pass();
            times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds / n);
        }

        return times;
    }

    public static byte[] Copies(byte[] pixels, int n)
    {
        var bytes = new byte[n * pixels.Length];
        for (var i = 0; i < n; i++)
        {
            pixels.CopyTo(bytes, i * pixels.Length);
        }

        return bytes;
    }
}

/// <summary>TorchSharp: preprocessing, forward and softmax in one dispose scope under inference mode.</summary>
internal sealed class RawTorch : IRawRunner
{
    private readonly ImageClassifier network;
    private readonly int imageSize;
    private readonly Device device;
    private readonly byte[] pixels;

    public RawTorch(string directory, int imageSize, Device device, byte[] pixels)
    {
        (network, _) = Checkpoint.Load(directory, device);
        this.imageSize = imageSize;
        this.device = device;
        this.pixels = pixels;
    }

    public List<double> Time(int n, double seconds, TimeSpan gap = default)
    {
        using var inference = inference_mode();
        var bytes = RawTiming.Copies(pixels, n);
        return RawTiming.Repeat(n, seconds, () =>
        {
            using var scope = NewDisposeScope();
            var x = Preprocess.ToNetworkInput(tensor(bytes, [n, 1, 28, 28], ScalarType.Byte).to(device), imageSize);
            GC.KeepAlive(nn.functional.softmax(network.forward(x), 1).cpu().data<float>().ToArray());
        }, gap);
    }

    public void Dispose() => network.Dispose();
}

/// <summary>
/// ONNX Runtime (CPU) on an ONNX file (a version's fp32 export or its int8 model): managed preprocessing, one Run with
/// all threads, spinning within a pass as the service under test is told (<c>Serving:OnnxSpinning</c>, off by default).
/// </summary>
internal sealed class RawOnnx : IRawRunner
{
    private readonly InferenceSession session;
    private readonly int imageSize;
    private readonly byte[] pixels;
    private readonly int channels;
    private readonly int height;
    private readonly int width;

    /// <summary>An image of <paramref name="channels"/>×<paramref name="height"/>×<paramref name="width"/> bytes (Fashion-MNIST's 1×28×28 by default).</summary>
    public RawOnnx(string modelPath, int imageSize, int threads, byte[] pixels, bool spinning, int channels = 1, int height = 28, int width = 28)
    {
        this.channels = channels;
        this.height = height;
        this.width = width;
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", spinning ? "1" : "0");
        options.AddSessionConfigEntry("session.force_spinning_stop", "1"); // as the service: spin within a pass only
        session = new InferenceSession(modelPath, options);
        this.imageSize = imageSize;
        this.pixels = pixels;
    }

    public List<double> Time(int n, double seconds, TimeSpan gap = default)
    {
        var per = channels * imageSize * imageSize;
        return RawTiming.Repeat(n, seconds, () =>
        {
            var input = new float[n * per];
            for (var i = 0; i < n; i++)
            {
                ManagedPreprocess.ToNetworkInput(pixels, channels, height, width, imageSize, input.AsSpan(i * per, per));
            }

            using var value = OrtValue.CreateTensorValueFromMemory(input, [n, channels, imageSize, imageSize]);
            using var run = new RunOptions();
            using var outputs = session.Run(run, [OnnxExporter.InputName], [value], [OnnxExporter.OutputName]);
            GC.KeepAlive(outputs[0].GetTensorDataAsSpan<float>().ToArray());
        }, gap);
    }

    public void Dispose() => session.Dispose();
}
