using System.Globalization;

namespace Nin.Bench;

/// <summary>
/// A process's resident memory from /proc (Linux): now, and its peak sampled every few milliseconds on a thread of its
/// own. Used by <c>bench hostile</c> and, linked into the test project, by the live memory tests.
/// </summary>
internal static class ProcessMemory
{
    public static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary>The largest resident size of a process while it runs, sampled every 2 ms.</summary>
    public sealed class PeakSampler : IDisposable
    {
        private readonly Thread thread;
        private volatile bool running = true;
        private long peak;

        public PeakSampler(int pid)
        {
            thread = new Thread(() =>
            {
                while (running)
                {
                    try
                    {
                        peak = Math.Max(peak, Rss(pid));
                    }
                    catch (IOException)
                    {
                        return; // the process is gone
                    }

                    Thread.Sleep(2);
                }
            }) { IsBackground = true, Name = "rss-sampler" };
            thread.Start();
        }

        public long Stop()
        {
            running = false;
            thread.Join();
            return peak;
        }

        public void Dispose() => Stop();
    }
}
