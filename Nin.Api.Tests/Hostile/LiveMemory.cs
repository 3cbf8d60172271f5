using System.Globalization;

namespace Nin.Api.Tests.Hostile;

/// <summary>
/// The resident memory of a live process (<c>VmRSS</c> in <c>/proc/{pid}/status</c>), sampled every few milliseconds
/// while an action runs, so a test sees the peak a request caused, not only what was left after it.
/// </summary>
internal static class LiveMemory
{
    public static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"No VmRSS for process {pid}.");
    }

    /// <summary>Runs <paramref name="action"/> and returns its result with the highest RSS seen while it ran.</summary>
    public static async Task<(T Result, long Peak)> PeakDuring<T>(int pid, Func<Task<T>> action)
    {
        using var stop = new CancellationTokenSource();
        long peak = Rss(pid);
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                peak = Math.Max(peak, Rss(pid));
                try
                {
                    await Task.Delay(5, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
        try
        {
            var result = await action();
            await Task.Delay(50); // what the request left allocated as it finished
            return (result, peak);
        }
        finally
        {
            await stop.CancelAsync();
            await sampler;
            peak = Math.Max(peak, Rss(pid));
        }
    }

    public static string Mb(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture) + " MB";
}
