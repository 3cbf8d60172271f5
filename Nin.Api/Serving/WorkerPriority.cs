using System.Runtime.InteropServices;

namespace Nin.Api.Serving;

/// <summary>
/// Gives an inference worker thread a lower scheduling priority (a Linux nice value above the process's) so that, when
/// forward passes keep every core busy, request threads still run at once: a request the admission queue refuses is
/// answered within milliseconds instead of waiting behind passes for a core. Lowering one's own threads needs no
/// privilege; elsewhere than Linux this does nothing. <see cref="ServingOptions.WorkerNice"/> 0 turns it off.
/// </summary>
internal static class WorkerPriority
{
    private const int PrioProcess = 0;

    public static void Lower(int nice)
    {
        if (nice <= 0 || !OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            var tid = gettid();
            var current = getpriority(PrioProcess, tid);
            _ = setpriority(PrioProcess, tid, Math.Min(19, current + nice));
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // An unusual C library: the threads keep the process's priority.
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int gettid();

    [DllImport("libc", SetLastError = true)]
    private static extern int getpriority(int which, int who);

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int prio);
}
