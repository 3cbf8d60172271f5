using System.Runtime.InteropServices;

namespace Nin.Model.Training;

/// <summary>
/// The C allocator's hold on memory libtorch has freed. glibc keeps freed blocks in per-thread arenas for reuse; a
/// training run (a thread of its own, gigabytes of short-lived activations) leaves them behind, so a long-lived process
/// grows run after run without holding any live tensor. <see cref="Trim"/> after each run hands the free pages back to
/// the system; together with <c>MALLOC_ARENA_MAX</c> (set by ./nin, the image, compose, k8s and the bundle) the process
/// stays flat. Elsewhere than glibc it does nothing.
/// </summary>
public static partial class NativeHeap
{
    // NIN_MALLOC_TRIM=0 turns it off (the memory benchmark's baseline).
    private static bool unavailable = !OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("NIN_MALLOC_TRIM") == "0";

    /// <summary>Returns free memory of every arena to the system (glibc <c>malloc_trim(0)</c>); false where there is no such call.</summary>
    public static bool Trim()
    {
        if (unavailable)
        {
            return false;
        }

        try
        {
            return MallocTrim(0) != 0;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            unavailable = true; // musl, or jemalloc preloaded without the glibc entry point
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
