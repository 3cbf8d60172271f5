using System.Runtime.InteropServices;

namespace Nin.Model.Runtime;

/// <summary>
/// cuDNN's benchmark mode — PyTorch's <c>torch.backends.cudnn.benchmark</c>: for a fixed input size, cuDNN
/// times its convolution algorithms on the first batches and keeps the fastest. TorchSharp 0.107 has no
/// setter for it (only <c>allow_tf32</c>), so this calls libtorch's own <c>at::Context</c> accessors,
/// which libtorch_cpu exports with C++ names. On a CPU the flag is stored and has no effect.
/// </summary>
public static unsafe class CudnnBenchmark
{
    private const string GlobalContext = "_ZN2at13globalContextEv";      // at::globalContext()
    private const string Setter = "_ZN2at7Context17setBenchmarkCuDNNEb";  // at::Context::setBenchmarkCuDNN(bool)
    private const string Getter = "_ZNK2at7Context14benchmarkCuDNNEv";    // at::Context::benchmarkCuDNN() const

    /// <summary>Turns the mode on or off; false when libtorch's exports cannot be found (nothing changes then).</summary>
    public static bool TrySet(bool enabled)
    {
        if (!TryFind(out var context, out var setter, out _))
        {
            return false;
        }

        ((delegate* unmanaged<nint, byte, void>)setter)(context, enabled ? (byte)1 : (byte)0);
        return true;
    }

    /// <summary>The current mode, or null when libtorch's exports cannot be found.</summary>
    public static bool? Get() =>
        TryFind(out var context, out _, out var getter) ? ((delegate* unmanaged<nint, byte>)getter)(context) != 0 : null;

    private static bool TryFind(out nint context, out nint setter, out nint getter)
    {
        context = setter = getter = 0;
        // TorchSharp has loaded libtorch_cpu already (from its package or NIN_LIBTORCH_DIR): by its soname the
        // loader hands back that same library.
        if (!TorchRuntime.IsInitialized || !NativeLibrary.TryLoad("libtorch_cpu.so", out var lib))
        {
            return false;
        }

        if (!NativeLibrary.TryGetExport(lib, GlobalContext, out var global)
            || !NativeLibrary.TryGetExport(lib, Setter, out setter)
            || !NativeLibrary.TryGetExport(lib, Getter, out getter))
        {
            return false;
        }

        context = ((delegate* unmanaged<nint>)global)();
        return context != 0;
    }
}
