using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Model.Runtime;

/// <summary>What the loaded Torch runtime is and where it runs.</summary>
public sealed record TorchInfo(
    string Device,
    string Backend,
    string TorchSharpVersion,
    bool CudaAvailable,
    int CudaDevices,
    int Threads,
    CpuGradientReport CpuGradients);

/// <summary>
/// Loads libtorch once per process, explains failures in plain words, and picks the device.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static TorchInfo? info;

    /// <summary>The TorchSharp native package this build references (<c>TorchBackend</c> at build time).</summary>
    public static string Backend { get; } =
        typeof(TorchRuntime).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "TorchBackend")?.Value ?? "cpu";

    public static string TorchSharpVersion { get; } =
        typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";

    public static bool IsInitialized => info is not null;

    /// <summary>libtorch's natives are loaded (set by <see cref="Initialize"/> before its checks run).</summary>
    internal static bool IsLoaded { get; private set; }

    /// <summary>The runtime, once <see cref="Initialize"/> has succeeded.</summary>
    public static TorchInfo Info => info ?? throw new InvalidOperationException("The Torch runtime is not initialised; call TorchRuntime.Initialize first.");

    /// <summary>Loads the natives, sets threads and resolves the device. Safe to call more than once.</summary>
    /// <exception cref="TorchLoadException">The natives cannot load; the message names the cause and the fix.</exception>
    public static TorchInfo Initialize(TorchOptions options)
    {
        lock (Gate)
        {
            if (info is not null)
            {
                return info;
            }

            var libTorchDir = options.LibTorchDirectory ?? Environment.GetEnvironmentVariable("NIN_LIBTORCH_DIR");
            if (!string.IsNullOrWhiteSpace(libTorchDir))
            {
                PreloadLibTorch(libTorchDir);
            }

            try
            {
                var wantsCuda = !options.Device.Equals("cpu", StringComparison.OrdinalIgnoreCase);
                if (!wantsCuda || !torch.TryInitializeDeviceType(DeviceType.CUDA))
                {
                    torch.InitializeDeviceType(DeviceType.CPU);
                }
            }
            catch (Exception ex) when (ex is not TorchLoadException)
            {
                throw new TorchLoadException(TorchNativeDiagnostics.Explain(ex, libTorchDir), ex);
            }

            IsLoaded = true;

            if (options.Threads > 0)
            {
                torch.set_num_threads(options.Threads);
            }

            var cuda = torch.cuda.is_available();
            var device = ResolveDevice(options.Device, cuda);
            var gradients = CpuGradientCheck.Run(options.OneDnn);
            info = new TorchInfo(device.ToString(), Backend, TorchSharpVersion, cuda, cuda ? torch.cuda.device_count() : 0, torch.get_num_threads(), gradients);
            return info;
        }
    }

    /// <summary>
    /// Gives the calling thread <paramref name="threads"/> intra-op threads (the configured count when 0).
    /// libtorch's OpenMP thread count belongs to the calling thread once it has run an operator; the serving
    /// engine gives its own threads fewer while several passes run, so long-running work such as training
    /// sets its thread's count explicitly rather than inheriting whatever was set last.
    /// </summary>
    public static void UseThreads(int threads = 0)
    {
        var wanted = threads > 0 ? threads : Info.Threads;
        if (wanted > 0 && torch.get_num_threads() != wanted)
        {
            torch.set_num_threads(wanted);
        }
    }

    /// <summary>
    /// From now on, a thread that has not chosen its count with <see cref="UseThreads"/> runs Torch on one thread.
    /// libtorch's OpenMP runtime (libgomp) keeps a team of worker threads for every thread that ever ran a parallel
    /// operator; once the teams hold more threads than there are cores, every team stops spinning between operators
    /// and sleeps instead, and each operator then pays a wake-up. A server calls this once, so request and loader
    /// threads stay single-threaded and only its inference and training threads own multi-threaded teams.
    /// </summary>
    public static void ConfineOtherThreads()
    {
        _ = Info;
        torch.set_num_threads(1);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a new thread with the configured Torch threads. The thread, and the OpenMP
    /// team libtorch gives it, end with the work, so long jobs such as training leave no idle team behind.
    /// </summary>
    public static Task<T> RunOnOwnThread<T>(string name, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                UseThreads();
                done.SetResult(work());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        })
        { IsBackground = true, Name = name };
        thread.Start();
        return done.Task;
    }

    /// <summary>
    /// Turns <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> into a device, refusing CUDA where none is present.
    /// </summary>
    public static Device ResolveDevice(string? requested, bool? cudaAvailable = null)
    {
        var cuda = cudaAvailable ?? torch.cuda.is_available();
        var text = string.IsNullOrWhiteSpace(requested) ? "auto" : requested.Trim().ToLowerInvariant();
        if (text == "auto")
        {
            return cuda ? torch.CUDA : torch.CPU;
        }

        if (text == "cpu")
        {
            return torch.CPU;
        }

        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda)
            {
                throw new ArgumentException(
                    $"Device '{requested}' was asked for, but CUDA is not available (backend '{Backend}'). Build with -p:TorchBackend=cuda-linux or system with a CUDA libtorch, or use 'auto' or 'cpu'.");
            }

            var index = text == "cuda" ? 0 : int.TryParse(text.AsSpan(5), out var i) ? i : -1;
            if (index < 0 || index >= torch.cuda.device_count())
            {
                throw new ArgumentException($"Device '{requested}' does not exist: {torch.cuda.device_count()} CUDA device(s) are present.");
            }

            return torch.device(DeviceType.CUDA, index);
        }

        throw new ArgumentException($"Unknown device '{requested}'. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.");
    }

    /// <summary>True for device names <see cref="ResolveDevice"/> understands (without checking CUDA is present).</summary>
    public static bool IsDeviceName(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        var t = text.Trim().ToLowerInvariant();
        return t is "auto" or "cpu" or "cuda" || (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0);
    }

    /// <summary>
    /// Loads libtorch's libraries by full path, so LibTorchSharp's dependencies resolve by soname
    /// without LD_LIBRARY_PATH having to be set before the process started.
    /// </summary>
    private static void PreloadLibTorch(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new TorchLoadException($"NIN_LIBTORCH_DIR / Torch:LibTorchDirectory points to '{directory}', which does not exist. Point it at a libtorch 'lib' folder, e.g. the output of: python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), \"lib\"))'.");
        }

        string[] order = ["c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch"];
        foreach (var name in order)
        {
            var file = Path.Combine(directory, OperatingSystem.IsWindows() ? $"{name}.dll" : OperatingSystem.IsMacOS() ? $"lib{name}.dylib" : $"lib{name}.so");
            if (File.Exists(file) && !NativeLibrary.TryLoad(file, out _))
            {
                throw new TorchLoadException($"Found '{file}' but it would not load; its own dependencies (CUDA runtime, libgomp) may be missing from the library path.");
            }
        }
    }
}

/// <summary>libtorch's natives could not load. The message says why and what to do.</summary>
public sealed class TorchLoadException : Exception
{
    public TorchLoadException(string message) : base(message)
    {
    }

    public TorchLoadException(string message, Exception inner) : base(message, inner)
    {
    }
}
