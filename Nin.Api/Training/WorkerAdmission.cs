using Nin.Model.Network;
using Nin.Model.Training;

namespace Nin.Api.Training;

/// <summary>Why no worker can run a request: a sentence for people, and the request fields it concerns.</summary>
public sealed record AdmissionRefusal(string Reason, IReadOnlyDictionary<string, string[]> Errors);

/// <summary>
/// Whether a live worker can run a training request: one that has the device asked for (or, for <c>auto</c>, its own
/// <c>Torch:Device</c>), knows the architecture and recipe, and has the memory a training step needs free on that device.
/// The API answers 409 with the reason when none can; the worker checks again when the job starts (<see cref="AdmitHere"/>),
/// since what was free when the job was queued may not be when it runs.
/// </summary>
public sealed class WorkerAdmission(IWorkerDirectory workers)
{
    /// <summary>Share of a device's free memory a training step may plan to use (the rest is headroom).</summary>
    public const double MemoryHeadroom = 0.9;

    /// <summary>Null when some live worker can run <paramref name="settings"/>; otherwise why none can.</summary>
    public AdmissionRefusal? Check(TrainSettings settings)
    {
        var live = workers.Live();
        if (live.Count == 0)
        {
            return new AdmissionRefusal(
                "No worker is running to take the job: start a process with Nin:Role worker (or all) and retry.",
                new Dictionary<string, string[]>());
        }

        var architecture = NetworkArchitectures.Get(settings.Architecture);
        var need = TrainingMemory.EstimateBytes(architecture, settings.BatchSize, settings.ImageSize);
        var knowing = live.Where(w => w.Architectures.Contains(settings.Architecture) && w.Recipes.Contains(settings.Recipe)).ToList();
        if (knowing.Count == 0)
        {
            var message = $"No live worker knows architecture '{settings.Architecture}' with recipe '{settings.Recipe}' (an older build?).";
            return new AdmissionRefusal(message, new Dictionary<string, string[]> { ["architecture"] = [message] });
        }

        var withDevice = knowing.Select(w => (Worker: w, Device: WorkerDevices.Choose(w, settings.Device))).Where(x => x.Device is not null).ToList();
        if (withDevice.Count == 0)
        {
            var message = DeviceReason(settings.Device, knowing);
            return new AdmissionRefusal(message, new Dictionary<string, string[]> { ["device"] = [message] });
        }

        if (withDevice.Any(x => Fits(x.Worker, x.Device!, need)))
        {
            return null;
        }

        // What the request needs, never what the hosts have.
        var memory = $"batchSize {settings.BatchSize} at imageSize {settings.ImageSize} needs about {need / (1 << 20):N0} MiB for activations and gradients, more than any worker that could run it has free for training now; use a smaller batchSize or imageSize.";
        return new AdmissionRefusal(memory, new Dictionary<string, string[]> { ["batchSize"] = [memory], ["imageSize"] = [memory] });
    }

    /// <summary>
    /// The check a worker makes when it takes the job up: its own device and memory now. Null when it can run it;
    /// otherwise the reason the job fails with.
    /// </summary>
    public static string? AdmitHere(TrainSettings settings, string device, TrainingMemoryProbe memory)
    {
        var architecture = NetworkArchitectures.Find(settings.Architecture);
        if (architecture is null)
        {
            return $"This worker does not know architecture '{settings.Architecture}'.";
        }

        var need = TrainingMemory.EstimateBytes(architecture, settings.BatchSize, settings.ImageSize);
        return memory.AvailableBytes(device) is { } free && need > free * MemoryHeadroom
            ? $"batchSize {settings.BatchSize} at imageSize {settings.ImageSize} needs about {need / (1 << 20):N0} MiB for activations and gradients, more than this worker has free for training now; use a smaller batchSize or imageSize."
            : null;
    }

    private static bool Fits(WorkerCapabilities worker, string device, long need) =>
        worker.Devices.First(d => d.Name == device).FreeMemoryBytes is not { } free || need <= free * MemoryHeadroom;

    private static string DeviceReason(string? requested, IReadOnlyList<WorkerCapabilities> workers)
    {
        var text = requested?.Trim().ToLowerInvariant() ?? "auto";
        var offered = workers.SelectMany(w => w.Devices.Select(d => d.Name)).Distinct().Order(StringComparer.Ordinal);
        var has = $"the live workers have: {string.Join(", ", offered)}";
        return text.StartsWith("cuda", StringComparison.Ordinal) && !workers.Any(w => w.Devices.Any(d => d.Name.StartsWith("cuda", StringComparison.Ordinal)))
            ? $"No worker has CUDA ({has}); use 'auto' or 'cpu', or start a worker on a GPU."
            : $"No worker has device '{requested}' ({has}).";
    }
}
