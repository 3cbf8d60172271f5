using System.Globalization;

namespace Nin.Model.Training;

/// <summary>
/// Rate and time left of work measured in units (images, requests, rounds): fed how many units are done so far, it
/// gives units per second over the recent past (a sliding window, so warm-up does not weigh on the rate for ever) and the
/// time left at that rate. Not thread-safe: one reporter feeds it.
/// </summary>
public sealed class ProgressClock
{
    private readonly TimeProvider time;
    private readonly long start;
    private readonly TimeSpan window;
    private readonly Queue<(long At, long Done)> samples = new();

    public ProgressClock(long total, TimeSpan? window = null, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        Total = total;
        this.time = time ?? TimeProvider.System;
        this.window = window ?? TimeSpan.FromSeconds(30);
        start = this.time.GetTimestamp();
        samples.Enqueue((start, 0));
    }

    /// <summary>All the units of this piece of work.</summary>
    public long Total { get; }

    /// <summary>Units done so far (the last <see cref="Update"/>).</summary>
    public long Done { get; private set; }

    public TimeSpan Elapsed => time.GetElapsedTime(start);

    /// <summary>Units per second over the window (since the start while it is shorter); null before any unit is done.</summary>
    public double? PerSecond
    {
        get
        {
            var (at, done) = samples.Peek();
            var seconds = time.GetElapsedTime(at).TotalSeconds;
            return Done > done && seconds > 0 ? (Done - done) / seconds : null;
        }
    }

    /// <summary>Time left at the current rate; zero when all is done, null while there is no rate yet.</summary>
    public TimeSpan? Left => Done >= Total ? TimeSpan.Zero : PerSecond is { } rate ? TimeSpan.FromSeconds((Total - Done) / rate) : null;

    /// <summary>Records that <paramref name="done"/> units are done (clamped to 0..Total; never goes back).</summary>
    public void Update(long done)
    {
        Done = Math.Clamp(Math.Max(done, Done), 0, Total);
        var now = time.GetTimestamp();
        samples.Enqueue((now, Done));
        // Keep the newest sample older than the window as the rate's base, so the window is always covered.
        while (samples.Count > 2 && time.GetElapsedTime(samples.ElementAt(1).At, now) >= window)
        {
            samples.Dequeue();
        }
    }

    /// <summary>A duration as people read it at a glance: 45s, 3m12s, 1h02m.</summary>
    public static string Format(TimeSpan span)
    {
        var seconds = (long)Math.Round(Math.Max(0, span.TotalSeconds));
        return seconds switch
        {
            < 60 => string.Create(CultureInfo.InvariantCulture, $"{seconds}s"),
            < 3600 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 60}m{seconds % 60:00}s"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600}h{seconds / 60 % 60:00}m"),
        };
    }
}
