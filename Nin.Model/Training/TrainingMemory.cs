using System.Globalization;
using Nin.Model.Network;

namespace Nin.Model.Training;

/// <summary>
/// What a training run needs in memory, and what the machine has free now: requests that cannot fit are refused
/// before they start, and the test pass is batched so it never needs more than a training step.
/// </summary>
public static class TrainingMemory
{
    /// <summary>A rough upper bound of one training step: the architecture's own per-image figure (feature maps kept for the backward pass, their gradients and working space) times the batch. The architecture is required: its memory model is its own, and no other network's figure stands in for it.</summary>
    public static long EstimateBytes(NetworkArchitecture architecture, int batchSize, int imageSize, int inputChannels = 1, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        return batchSize * architecture.BytesPerImage(imageSize, inputChannels, classes);
    }

    /// <summary>A forward pass in inference mode: every feature map counted once (most are freed as the pass goes), a third of a step's figure.</summary>
    public static long EstimateEvaluationBytes(NetworkArchitecture architecture, int batchSize, int imageSize, int inputChannels = 1, int classes = 10) =>
        EstimateBytes(architecture, batchSize, imageSize, inputChannels, classes) / 3;

    /// <summary>
    /// The largest test batch (at most <paramref name="limit"/>) whose forward pass needs no more than a training step of
    /// <paramref name="trainBatchSize"/> images: the check that admitted the run then covers the test pass too.
    /// </summary>
    public static int EvaluationBatchSize(NetworkArchitecture architecture, int trainBatchSize, int imageSize, int limit = 256)
    {
        var budget = EstimateBytes(architecture, Math.Max(1, trainBatchSize), imageSize);
        var perImage = Math.Max(1, EstimateEvaluationBytes(architecture, 1, imageSize));
        return (int)Math.Clamp(budget / perImage, 1, Math.Max(1, limit));
    }

    /// <summary>
    /// Host memory free for a new allocation now: the smaller of the machine's free memory (Linux's <c>MemAvailable</c>;
    /// elsewhere the runtime's figure of the machine's memory load) and what the GC's limit (the machine's or the
    /// container's) leaves beside this process's working set.
    /// </summary>
    public static long AvailableHostBytes()
    {
        var gc = GC.GetGCMemoryInfo();
        var available = Math.Max(0, gc.TotalAvailableMemoryBytes - Environment.WorkingSet);
        var free = OperatingSystem.IsLinux() ? MemAvailable() : null;
        // Off Linux the runtime's memory load (as of the last collection) stands in for MemAvailable.
        free ??= gc.MemoryLoadBytes > 0 ? Math.Max(0, gc.TotalAvailableMemoryBytes - gc.MemoryLoadBytes) : null;
        return free is { } f ? Math.Min(f, available) : available;
    }

    /// <summary>Linux's <c>MemAvailable</c> from <c>/proc/meminfo</c>, or null where it cannot be read.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
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
