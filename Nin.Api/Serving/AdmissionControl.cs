using Microsoft.Extensions.Options;

namespace Nin.Api.Serving;

/// <summary>
/// The bounded admission queue in front of the batcher (Triton's queue policy, TorchServe's job queue size). Each
/// admitted request adds its estimated forward work (its images × its version's measured time per image) until it is
/// answered; a request that would have more than <see cref="ServingOptions.MaxQueueMilliseconds"/> of work ahead of it,
/// spread over the inference workers, is refused at once (503 + Retry-After) rather than left to wait towards the
/// request timeout. A request arriving at an empty queue is always admitted, however big, so nothing is refused forever.
/// </summary>
public sealed class AdmissionControl(IOptions<ServingOptions> options, InferenceEngine engine)
{
    private readonly ServingOptions options = options.Value;
    private readonly Lock gate = new();
    private double pendingMilliseconds;
    private int pendingImages;

    /// <summary>Estimated forward work admitted and not yet answered, in milliseconds of one worker.</summary>
    public double PendingMilliseconds
    {
        get
        {
            lock (gate)
            {
                return pendingMilliseconds;
            }
        }
    }

    /// <summary>Images admitted and not yet answered.</summary>
    public int PendingImages => Volatile.Read(ref pendingImages);

    /// <summary>
    /// Whether the queue is already past its bound, so a request can be refused before its body is read (503 at once,
    /// whatever it holds). False while it has room: the request is then admitted or not by its own size.
    /// </summary>
    public bool IsFull(out TimeSpan retryAfter)
    {
        var workers = Math.Max(1, engine.WorkerCount);
        lock (gate)
        {
            var full = pendingImages > 0
                && ((options.MaxQueueMilliseconds > 0 && pendingMilliseconds / workers > options.MaxQueueMilliseconds)
                    || (options.MaxQueuedImages > 0 && pendingImages >= options.MaxQueuedImages));
            retryAfter = full ? TimeSpan.FromMilliseconds(Math.Max(1000, pendingMilliseconds / workers)) : TimeSpan.Zero;
            return full;
        }
    }

    /// <summary>A ticket to dispose when the request is answered, or null with how long to wait before retrying.</summary>
    public Ticket? TryAdmit(int images, double millisecondsPerImage, out TimeSpan retryAfter)
    {
        // Forward work only: decoding is bounded on its own (the decode gate) and small images decode in a fraction of a
        // pass, while one big image's decode would say nothing about the next request's.
        var cost = images * Math.Max(0, millisecondsPerImage);

        var workers = Math.Max(1, engine.WorkerCount);
        lock (gate)
        {
            var empty = pendingImages == 0;
            var overTime = options.MaxQueueMilliseconds > 0 && (pendingMilliseconds + cost) / workers > options.MaxQueueMilliseconds;
            var overCount = options.MaxQueuedImages > 0 && pendingImages + images > options.MaxQueuedImages;
            if (!empty && (overTime || overCount))
            {
                // About when the work ahead is done: the queue ahead, drained by the workers.
                retryAfter = TimeSpan.FromMilliseconds(Math.Max(1000, pendingMilliseconds / workers));
                return null;
            }

            pendingMilliseconds += cost;
            pendingImages += images;
        }

        retryAfter = TimeSpan.Zero;
        return new Ticket(this, images, cost);
    }

    private void Leave(int images, double cost)
    {
        lock (gate)
        {
            pendingImages -= images;
            pendingMilliseconds = pendingImages == 0 ? 0 : Math.Max(0, pendingMilliseconds - cost); // no drift from rounding
        }
    }

    /// <summary>An admitted request's place in the queue; disposing it (once) gives the place back.</summary>
    public sealed class Ticket(AdmissionControl owner, int images, double cost) : IDisposable
    {
        private int left;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref left, 1) == 0)
            {
                owner.Leave(images, cost);
            }
        }
    }
}
