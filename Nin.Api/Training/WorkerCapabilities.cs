using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Training;

/// <summary>A device a worker trains on, with the memory free on it now when that can be known (CUDA: not in TorchSharp 0.107).</summary>
public sealed record DeviceCapability(string Name, long? FreeMemoryBytes);

/// <summary>
/// What one process that runs training jobs can run, as it publishes it: its devices (<c>cpu</c>, and <c>cuda:N</c> when it
/// has CUDA and <c>Torch:Device</c> is not <c>cpu</c>), the device a job without one uses (<c>Torch:Device</c>), free memory,
/// the architectures and recipes its build knows, and the job it runs now. Admission of <c>POST /train</c> is checked
/// against these, not against the process that received the request.
/// </summary>
public sealed record WorkerCapabilities(
    string WorkerId,
    string Host,
    string Role,
    string DefaultDevice,
    IReadOnlyList<DeviceCapability> Devices,
    IReadOnlyList<string> Architectures,
    IReadOnlyList<string> Recipes,
    long? FreeWorkBytes,
    DateTimeOffset SeenAt,
    string? RunningJob);

/// <summary>The workers that can take a job now: this process (role <c>all</c> without PostgreSQL) or the live rows of the shared state.</summary>
public interface IWorkerDirectory
{
    IReadOnlyList<WorkerCapabilities> Live();
}

/// <summary>
/// Devices as a job on this process resolves them, honouring <c>Torch:Device</c>: <c>auto</c> (or none) is the configured
/// device; <c>cuda</c> is refused on a process configured for the CPU even when a GPU is present.
/// </summary>
public static class WorkerDevices
{
    /// <summary>The devices this process offers: the CPU, and every CUDA device unless configured for the CPU.</summary>
    public static IReadOnlyList<string> Offered()
    {
        var info = TorchRuntime.Info;
        var names = new List<string> { "cpu" };
        if (info.CudaAvailable && info.Device != "cpu")
        {
            names.AddRange(Enumerable.Range(0, info.CudaDevices).Select(i => $"cuda:{i}"));
        }

        return names;
    }

    /// <summary>The device for <paramref name="requested"/> on this process; <see cref="ArgumentException"/> when it does not have it.</summary>
    public static Device Resolve(string? requested)
    {
        var text = string.IsNullOrWhiteSpace(requested) ? "auto" : requested.Trim().ToLowerInvariant();
        var info = TorchRuntime.Info;
        if (text == "auto")
        {
            return TorchRuntime.ResolveDevice(info.Device, info.CudaAvailable);
        }

        if (text.StartsWith("cuda", StringComparison.Ordinal) && info.CudaAvailable && info.Device == "cpu")
        {
            throw new ArgumentException($"Device '{requested}' was asked for, but this worker is configured for the CPU (Torch:Device=cpu).");
        }

        return TorchRuntime.ResolveDevice(text, info.CudaAvailable);
    }

    /// <summary>The device name a worker with <paramref name="worker"/>'s devices would use for <paramref name="requested"/>, or null if it has none.</summary>
    public static string? Choose(WorkerCapabilities worker, string? requested)
    {
        var text = string.IsNullOrWhiteSpace(requested) ? "auto" : requested.Trim().ToLowerInvariant();
        var names = worker.Devices.Select(d => d.Name).ToList();
        var wanted = text switch
        {
            "auto" => worker.DefaultDevice == "cuda" ? "cuda:0" : worker.DefaultDevice,
            "cuda" => "cuda:0",
            _ => text,
        };
        return names.Contains(wanted) ? wanted : null;
    }
}

/// <summary>This process as a worker: what it offers now.</summary>
public sealed class LocalWorker(TrainingMemoryProbe memory, JobCancellation cancellation, IOptions<NinOptions> folders, NinRole role)
{
    public WorkerCapabilities Describe()
    {
        var devices = WorkerDevices.Offered()
            .Select(d => new DeviceCapability(d, memory.AvailableBytes(d)))
            .ToArray();
        var defaultDevice = WorkerDevices.Resolve("auto").ToString();
        long? freeWork;
        try
        {
            freeWork = Model.Checkpoints.DiskSpace.Free(folders.Value.ResolvedWorkDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            freeWork = null;
        }

        return new WorkerCapabilities(
            WorkerIdentity.Current,
            Environment.MachineName,
            role.Name,
            defaultDevice,
            devices,
            [.. NetworkArchitectures.Names],
            [.. TrainingRecipes.Names],
            freeWork,
            DateTimeOffset.UtcNow,
            cancellation.Running.FirstOrDefault());
    }
}

/// <summary>Role <c>all</c> without PostgreSQL: the only worker is this process.</summary>
public sealed class LocalWorkerDirectory(LocalWorker local) : IWorkerDirectory
{
    public IReadOnlyList<WorkerCapabilities> Live() => [local.Describe()];
}
