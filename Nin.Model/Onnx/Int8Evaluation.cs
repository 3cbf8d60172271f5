using Microsoft.ML.OnnxRuntime;
using Nin.Model.Data;

namespace Nin.Model.Onnx;

/// <summary>
/// The fp32 and int8 models side by side on a test split (in ONNX Runtime, with the serving preprocessing): each one's
/// accuracy, how often they agree, and their largest difference in any class probability.
/// </summary>
public sealed record Int8Accuracy
{
    /// <summary>The dataset whose test split was used.</summary>
    public string? Dataset { get; init; }

    public int TestImages { get; init; }

    public double Fp32 { get; init; }

    public double Int8 { get; init; }

    /// <summary>Fraction of test images on which both models predict the same class.</summary>
    public double Agreement { get; init; }

    /// <summary>Largest |p_int8 − p_fp32| over all images and classes.</summary>
    public double MaxProbabilityDifference { get; init; }

    /// <summary>fp32 minus int8 accuracy, in percentage points (negative: int8 did better).</summary>
    public double DropPoints => Math.Round((Fp32 - Int8) * 100, 4);

    /// <summary>Runs both models over <paramref name="test"/> in batches.</summary>
    public static Int8Accuracy Measure(byte[] fp32Model, byte[] int8Model, ImageDataset test, int imageSize, int threads, CancellationToken cancellationToken = default)
    {
        if (test.Count == 0)
        {
            throw new ArgumentException($"Dataset '{test.Name}' has no test images.", nameof(test));
        }

        const int batch = 32;
        using var options = OnnxSessions.CpuOptions(threads);
        using var fp32 = new InferenceSession(fp32Model, options);
        using var int8 = new InferenceSession(int8Model, options);
        var input = fp32.InputMetadata.Keys.Single();
        var output = fp32.OutputMetadata.Keys.Single();
        int fp32Right = 0, int8Right = 0, agree = 0;
        var maxDifference = 0.0;
        for (var start = 0; start < test.Count; start += batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(batch, test.Count - start);
            var floats = Int8Calibration.NetworkInput(test, Enumerable.Range(start, n).ToArray(), imageSize);
            using var value = OrtValue.CreateTensorValueFromMemory(floats, [n, test.Channels, imageSize, imageSize]);
            using var run = new RunOptions();
            using var a = fp32.Run(run, [input], [value], [output]);
            using var b = int8.Run(run, [input], [value], [output]);
            var p = a[0].GetTensorDataAsSpan<float>();
            var q = b[0].GetTensorDataAsSpan<float>();
            var k = p.Length / n;
            for (var i = 0; i < n; i++)
            {
                var label = test.Labels[start + i];
                var pi = ArgMax(p.Slice(i * k, k));
                var qi = ArgMax(q.Slice(i * k, k));
                fp32Right += pi == label ? 1 : 0;
                int8Right += qi == label ? 1 : 0;
                agree += pi == qi ? 1 : 0;
            }

            for (var j = 0; j < p.Length; j++)
            {
                maxDifference = Math.Max(maxDifference, Math.Abs(p[j] - q[j]));
            }
        }

        return new Int8Accuracy
        {
            Dataset = test.Name,
            TestImages = test.Count,
            Fp32 = (double)fp32Right / test.Count,
            Int8 = (double)int8Right / test.Count,
            Agreement = (double)agree / test.Count,
            MaxProbabilityDifference = maxDifference,
        };
    }

    /// <summary>The index of the largest value (the first of equals): a row's predicted class.</summary>
    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
