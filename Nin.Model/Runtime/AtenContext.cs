using System.Runtime.InteropServices;

namespace Nin.Model.Runtime;

/// <summary>
/// libtorch's global <c>at::Context</c> flags that TorchSharp 0.107 has no setter for (PyTorch's
/// <c>torch.backends.*</c>). libtorch_cpu exports their accessors with C++ names; TorchSharp has loaded that
/// library already (from its package or <c>NIN_LIBTORCH_DIR</c>), so by its soname the loader hands back the
/// same one. Where the exports cannot be found (another platform's name mangling), nothing changes.
/// </summary>
internal static unsafe class AtenContext
{
    private const string GlobalContext = "_ZN2at13globalContextEv"; // at::globalContext()

    /// <summary>Sets a flag through <paramref name="setter"/> (a <c>void at::Context::setX(bool)</c> export); false when not found.</summary>
    public static bool TrySet(string setter, bool value)
    {
        if (!TryFind(setter, out var context, out var function))
        {
            return false;
        }

        ((delegate* unmanaged<nint, byte, void>)function)(context, value ? (byte)1 : (byte)0);
        return true;
    }

    /// <summary>Reads a flag through <paramref name="getter"/> (a <c>bool at::Context::x() const</c> export); null when not found.</summary>
    public static bool? Get(string getter) =>
        TryFind(getter, out var context, out var function) ? ((delegate* unmanaged<nint, byte>)function)(context) != 0 : null;

    private static bool TryFind(string export, out nint context, out nint function)
    {
        context = function = 0;
        if (!TorchRuntime.IsLoaded || !NativeLibrary.TryLoad("libtorch_cpu.so", out var lib))
        {
            return false;
        }

        if (!NativeLibrary.TryGetExport(lib, GlobalContext, out var global) || !NativeLibrary.TryGetExport(lib, export, out function))
        {
            return false;
        }

        context = ((delegate* unmanaged<nint>)global)();
        return context != 0;
    }
}
