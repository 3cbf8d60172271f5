using System.Globalization;
using Nin.Model.Training;

namespace Nin.Bench;

/// <summary>
/// The live progress line of a long command: what it is doing (phase), where it is, units per second, elapsed and time
/// left. On a terminal one line is rewritten in place (at most four times a second) and cleared when the work is done;
/// when the output is redirected (CI logs, files), a plain line at most every <c>NIN_PROGRESS_SECONDS</c> (15 s), so
/// logs stay readable. Figures a command prints stay on their own lines either way.
/// </summary>
internal sealed class ProgressLine : IDisposable
{
    private static readonly bool Terminal = !Console.IsOutputRedirected;
    private static readonly TimeSpan PlainEvery = TimeSpan.FromSeconds(
        double.TryParse(Environment.GetEnvironmentVariable("NIN_PROGRESS_SECONDS"), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 15);

    private readonly string phase;
    private readonly string unit;
    private readonly ProgressClock clock;
    private DateTime lastWritten = DateTime.UtcNow;
    private int width;

    public ProgressLine(string phase, long total, string unit)
    {
        this.phase = phase;
        this.unit = unit;
        clock = new ProgressClock(total);
    }

    /// <summary>Records progress (<paramref name="done"/> units of the total) and shows it when it is time to.</summary>
    public void Report(long done, string? where = null)
    {
        clock.Update(done);
        var now = DateTime.UtcNow;
        if (now - lastWritten < (Terminal ? TimeSpan.FromMilliseconds(250) : PlainEvery))
        {
            return;
        }

        lastWritten = now;
        Write(Describe(where));
    }

    /// <summary>The line itself: "[phase] where · 123.4 images/s · 1m05s elapsed · ~3m10s left".</summary>
    public string Describe(string? where = null)
    {
        var parts = new List<string> { $"[{phase}]" };
        if (!string.IsNullOrEmpty(where))
        {
            parts.Add(where);
        }

        parts.Add(string.Create(CultureInfo.InvariantCulture, $"{clock.Done}/{clock.Total} {unit}"));
        if (clock.PerSecond is { } rate)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{rate:F1} {unit}/s"));
        }

        parts.Add($"{ProgressClock.Format(clock.Elapsed)} elapsed");
        parts.Add(clock.Left is { } left ? $"~{ProgressClock.Format(left)} left" : "time left unknown yet");
        return string.Join(" · ", parts);
    }

    /// <summary>Prints a line of figures without mangling the live line.</summary>
    public void WriteLine(string line)
    {
        Clear();
        Console.WriteLine(line);
    }

    private void Write(string line)
    {
        if (Terminal)
        {
            var padded = line.Length < width ? line.PadRight(width) : line;
            width = line.Length;
            Console.Write("\r" + padded);
        }
        else
        {
            Console.WriteLine(line);
        }
    }

    private void Clear()
    {
        if (Terminal && width > 0)
        {
            Console.Write("\r" + new string(' ', width) + "\r");
            width = 0;
        }
    }

    public void Dispose() => Clear();
}
