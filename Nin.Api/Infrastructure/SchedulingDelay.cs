using System.Diagnostics;
using System.Diagnostics.Metrics;
using Nin.Api.Serving;

namespace Nin.Api.Infrastructure;

/// <summary>
/// How long work waits for a thread-pool thread now: the delay every request meets before any handler can see it
/// (socket completions, Kestrel's parsing and the handlers all run on the pool). Admission counts forward work, which
/// cannot see a flood held back by the cores' HTTP work (an H200 served the GPU side far faster than 16 cores could
/// parse, decode and answer, so requests waited in the pool and nothing was refused). A dedicated thread queues a
/// probe to the pool's global queue every <see cref="Interval"/> and times how long it took to run; while a probe is
/// still waiting, its age counts. <see cref="Current"/> is the largest delay of the last <see cref="Window"/>, so a
/// saturated pool is not taken for a recovered one between two probes.
/// </summary>
public sealed class SchedulingDelay : IHostedService, IDisposable
{
    /// <summary>Time between probes.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a measured delay is remembered.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(1);

    private readonly CancellationTokenSource stopping = new();
    private readonly Lock gate = new();
    private readonly Probe probe;
    private Thread? thread;
    private long pendingSince; // timestamp of the probe waiting in the pool; 0 when none
    private double recentMax; // ms, the largest delay measured since recentMaxAt
    private long recentMaxAt;
    private double last;
    private int disposed;
    private int stopped;

    public SchedulingDelay(IMeterFactory meters)
    {
        probe = new Probe(this);
        meters.Create(ServingMetrics.MeterName).CreateObservableGauge("nin.threadpool.queue_delay", () => Current / 1000, "s",
            "How long work waits for a thread-pool thread (the largest delay of the last second, a waiting probe's age included)");
    }

    /// <summary>The largest delay, in milliseconds, measured in the last second or of the probe still waiting.</summary>
    public double Current
    {
        get
        {
            var now = Stopwatch.GetTimestamp();
            var waiting = Volatile.Read(ref pendingSince) is var since and not 0 ? Stopwatch.GetElapsedTime(since, now).TotalMilliseconds : 0;
            lock (gate)
            {
                var measured = Stopwatch.GetElapsedTime(recentMaxAt, now) <= Window ? recentMax : last;
                return Math.Max(waiting, measured);
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        thread = new Thread(Run) { IsBackground = true, Name = "nin scheduling-delay probe" };
        thread.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Stop();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        // Once: the container disposes the instance as itself and as the hosted service. Stopped first, also when the
        // host is disposed without stopping, so the thread never waits on a disposed handle.
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            Stop();
            stopping.Dispose();
        }
    }

    /// <summary>
    /// Cancels once, whichever comes first: the host's stop or the container's disposal. A test host can be disposed
    /// before its stop reaches this service (CI saw the stop cancel a token source the disposal had already freed).
    /// </summary>
    private void Stop()
    {
        if (Interlocked.Exchange(ref stopped, 1) == 0)
        {
            stopping.Cancel();
        }

        thread?.Join(TimeSpan.FromSeconds(1));
    }

    private void Run()
    {
        var handle = stopping.Token.WaitHandle;
        while (!handle.WaitOne(Interval))
        {
            if (Volatile.Read(ref pendingSince) != 0)
            {
                continue; // one probe at a time: while it waits, its age is the reading
            }

            Volatile.Write(ref pendingSince, Stopwatch.GetTimestamp());
            ThreadPool.UnsafeQueueUserWorkItem(probe, preferLocal: false);
        }
    }

    private void Ran()
    {
        var now = Stopwatch.GetTimestamp();
        var delay = Stopwatch.GetElapsedTime(Volatile.Read(ref pendingSince), now).TotalMilliseconds;
        lock (gate)
        {
            last = delay;
            if (delay >= recentMax || Stopwatch.GetElapsedTime(recentMaxAt, now) > Window)
            {
                recentMax = delay;
                recentMaxAt = now;
            }
        }

        Volatile.Write(ref pendingSince, 0);
    }

    private sealed class Probe(SchedulingDelay owner) : IThreadPoolWorkItem
    {
        public void Execute() => owner.Ran();
    }
}
