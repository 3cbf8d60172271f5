using Nin.Model.Training;

namespace Nin.Api.Tests.Model;

/// <summary>
/// The long commands' progress figures (./nin bench train printed nothing for 21 minutes): rate over a sliding window,
/// time left at that rate, and durations written as people read them.
/// </summary>
[UnitTests]
public sealed class ProgressClockTests
{
    private sealed class ManualTime : TimeProvider
    {
        private long ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => ticks;

        public void Advance(TimeSpan by) => ticks += by.Ticks;
    }

    [Fact]
    public void Rate_and_time_left_follow_the_work_done()
    {
        var time = new ManualTime();
        var clock = new ProgressClock(1000, TimeSpan.FromSeconds(30), time);
        Assert.Null(clock.PerSecond);
        Assert.Null(clock.Left); // no rate yet: no guess

        time.Advance(TimeSpan.FromSeconds(10));
        clock.Update(100);
        Assert.Equal(10.0, clock.PerSecond!.Value, 6);
        Assert.Equal(TimeSpan.FromSeconds(90), clock.Left);
        Assert.Equal(TimeSpan.FromSeconds(10), clock.Elapsed);

        clock.Update(50); // never goes back
        Assert.Equal(100, clock.Done);
        clock.Update(5000); // nor past the total
        Assert.Equal(1000, clock.Done);
        Assert.Equal(TimeSpan.Zero, clock.Left);
    }

    [Fact]
    public void The_rate_forgets_a_slow_start_after_the_window()
    {
        var time = new ManualTime();
        var clock = new ProgressClock(10_000, TimeSpan.FromSeconds(30), time);
        // A slow warm-up: 1 unit/s for 60 s, then 100 units/s.
        for (var i = 1; i <= 60; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            clock.Update(i);
        }

        for (var i = 1; i <= 60; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            clock.Update(60 + (100 * i));
        }

        // Over the whole run it would be (6060 / 120) ≈ 50.5/s; the window sees the recent 100/s.
        Assert.InRange(clock.PerSecond!.Value, 95, 100.0001);
        Assert.InRange(clock.Left!.Value.TotalSeconds, 39, 41.5); // (10000 - 6060) / ~100
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(44.6, "45s")]
    [InlineData(192, "3m12s")]
    [InlineData(3600 + 120 + 5, "1h02m")]
    [InlineData(-5, "0s")]
    public void Durations_read_at_a_glance(double seconds, string expected) =>
        Assert.Equal(expected, ProgressClock.Format(TimeSpan.FromSeconds(seconds)));
}
