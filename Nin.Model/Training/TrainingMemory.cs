using System.Globalization;

namespace Nin.Model.Training;

/// <summary>
/// What a training run needs in memory, and what the machine has free now: requests that cannot fit are refused
/// before they start, and the test pass is batched so it never needs more than a training step.
/// </summary>
public static class TrainingMemory
{
    /// <summary>Floats of the NiN's feature maps for one image (three convs per block, the pools, the input).</summary>
    public static long FloatsPerImage(int imageSize)
    {
        static long Conv(long n, int k, int s, int p) => ((n + (2 * p) - k) / s) + 1;
        static long Pool(long n) => ((n - 3) / 2) + 1;
        long size = imageSize;
        long n1 = Conv(size, 11, 4, 0), p1 = Pool(n1), p2 = Pool(p1), p3 = Pool(p2);
        return (size * size) + (3 * 96 * n1 * n1) + (96 * p1 * p1) + (3 * 256 * p1 * p1) + (256 * p2 * p2) + (3 * 384 * p2 * p2) + (384 * p3 * p3 * 2) + (3 * 10 * p3 * p3);
    }

    /// <summary>A rough upper bound of one training step: feature maps kept for the backward pass, their gradients and the optimizer's work.</summary>
    public static long EstimateBytes(int batchSize, int imageSize) => batchSize * FloatsPerImage(imageSize) * 4 * 3;

    /// <summary>A forward pass in inference mode: every feature map counted once (most are freed as the pass goes).</summary>
    public static long EstimateEvaluationBytes(int batchSize, int imageSize) => batchSize * FloatsPerImage(imageSize) * 4;

    /// <summary>
    /// The largest test batch (at most <paramref name="limit"/>) whose forward pass needs no more than a training step of
    /// <paramref name="trainBatchSize"/> images: the check that admitted the run then covers the test pass too.
    /// </summary>
    public static int EvaluationBatchSize(int trainBatchSize, int imageSize, int limit = 256)
    {
        var budget = EstimateBytes(Math.Max(1, trainBatchSize), imageSize);
        var perImage = EstimateEvaluationBytes(1, imageSize);
        return (int)Math.Clamp(budget / perImage, 1, Math.Max(1, limit));
    }

    /// <summary>
    /// Host memory free for a new allocation now: the smaller of Linux's <c>MemAvailable</c> and what the GC's limit (the
    /// machine's or the container's) leaves beside this process's working set.
    /// </summary>
    public static long AvailableHostBytes()
    {
        var limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var available = Math.Max(0, limit - Environment.WorkingSet);
        return MemAvailable() is { } free ? Math.Min(free, available) : available;
    }

    private static long? MemAvailable()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }

        return null;
    }
}
