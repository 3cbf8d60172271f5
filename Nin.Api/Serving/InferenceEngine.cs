using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Nin.Model.Runtime;

namespace Nin.Api.Serving;

/// <summary>One image to classify: native-size bytes (C×h×w) or an already preprocessed float tensor (C×S×S, a slice of the request's tensor).</summary>
public sealed record InferenceInput(byte[]? Bytes, ReadOnlyMemory<float>? Floats);

/// <summary>
/// One image's softmax probabilities, the size of the forward pass that computed them, how long the image
/// waited in the queue and how long that pass took (preprocessing, forward, softmax, copy out).
/// </summary>
public sealed record InferenceResult(float[] Probabilities, int BatchSize, double QueueMilliseconds, double ForwardMilliseconds);

/// <summary>Counts of what the batcher did, for tests, benchmarks and /metrics.</summary>
public sealed class ServingStats
{
    private long forwardPasses;
    private long images;
    private long largestBatch;
    private long failedPasses;
    private long cancelledImages;
    private long inlinePasses;
    private readonly long[] batchSizes = new long[1025];

    public long ForwardPasses => Interlocked.Read(ref forwardPasses);

    public long Images => Interlocked.Read(ref images);

    public long LargestBatch => Interlocked.Read(ref largestBatch);

    /// <summary>Forward passes that threw (their requests got the error).</summary>
    public long FailedPasses => Interlocked.Read(ref failedPasses);

    /// <summary>Queued images skipped because their request was cancelled or timed out before their pass.</summary>
    public long CancelledImages => Interlocked.Read(ref cancelledImages);

    /// <summary>Passes of a lone image run on its request's thread because the engine was idle (<see cref="ServingOptions.IdlePassesInline"/>).</summary>
    public long InlinePasses => Interlocked.Read(ref inlinePasses);

    internal void RecordInline() => Interlocked.Increment(ref inlinePasses);

    internal void RecordFailure() => Interlocked.Increment(ref failedPasses);

    internal void RecordCancelled() => Interlocked.Increment(ref cancelledImages);

    /// <summary>How many forward passes served each batch size (index = size, capped at 1024).</summary>
    public IReadOnlyDictionary<int, long> BatchSizeCounts =>
        batchSizes.Select((count, size) => (size, count)).Where(p => p.count > 0).ToDictionary(p => p.size, p => p.count);

    internal void Record(int batch)
    {
        Interlocked.Increment(ref forwardPasses);
        Interlocked.Add(ref images, batch);
        Interlocked.Increment(ref batchSizes[Math.Min(batch, 1024)]);
        long seen;
        while (batch > (seen = Interlocked.Read(ref largestBatch)) && Interlocked.CompareExchange(ref largestBatch, batch, seen) != seen)
        {
        }
    }
}

/// <summary>
/// A dynamic batcher in front of the served networks, like Triton's: inference workers, each on a thread of
/// its own, coalesce concurrent requests into forward passes. Own threads mean libtorch always sees the same
/// few calling threads (warm OpenMP teams, not one per thread-pool thread) and request handling never waits
/// behind a forward pass for a pool thread. On a CPU there is one worker per Torch thread: a lone request runs
/// on worker 0 with all of Torch's threads; when requests queue up while it runs, the helpers take their share
/// and every pass runs on one thread, in small batches, which on a few cores beats one big batch on every
/// thread (<c>./nin bench forward</c>). The passes themselves run in the version's engine (<see cref="IModelRunner"/>:
/// TorchSharp or ONNX Runtime), which is told how many threads each pass may use.
/// </summary>
public sealed partial class InferenceEngine : IAsyncDisposable
{
    private readonly Channel<WorkItem> queue = Channel.CreateUnbounded<WorkItem>();
    private readonly ServingOptions options;
    private readonly ILogger<InferenceEngine> logger;
    private readonly int torchThreads;
    private readonly TaskCompletionSource stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim helpWanted = new(0);
    private readonly int helpers;
    private int busy;
    private int primaryBusy;
    private int running;
    private bool stopping;

    public InferenceEngine(IOptions<ServingOptions> options, IOptions<TorchOptions> torch, ILogger<InferenceEngine> logger)
    {
        this.options = options.Value;
        this.logger = logger;
        var runtime = TorchRuntime.Initialize(torch.Value);
        TorchRuntime.ConfineOtherThreads();
        torchThreads = Math.Max(1, runtime.Threads);
        var cpu = runtime.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase);
        WorkerCount = this.options.Workers > 0 ? this.options.Workers : cpu ? torchThreads : 1;
        MaxBatchSize = this.options.MaxBatchSize > 0 ? this.options.MaxBatchSize : cpu ? 4 : 64;
        running = WorkerCount;
        helpers = WorkerCount - 1;
        for (var i = 0; i < WorkerCount; i++)
        {
            new Thread(i == 0 ? RunPrimary : RunHelper) { IsBackground = true, Name = $"nin-inference-{i}" }.Start();
        }
    }

    public ServingStats Stats { get; } = new();

    /// <summary>How many inference threads run forward passes.</summary>
    public int WorkerCount { get; }

    /// <summary>Most images in one forward pass.</summary>
    public int MaxBatchSize { get; }

    /// <summary>
    /// Results per input, in order. The caller holds a reference on <paramref name="model"/>; each queued image takes one
    /// more, released by the worker when its forward pass has ended, so a caller that stops waiting (cancelled, timed out)
    /// and releases its own cannot have the network disposed under a pass still queued or running.
    /// </summary>
    public Task<InferenceResult[]> InferAsync(LoadedModel model, IReadOnlyList<InferenceInput> inputs, CancellationToken cancellationToken = default)
    {
        var now = Stopwatch.GetTimestamp();
        var parent = Activity.Current?.Context ?? default;
        if (inputs.Count == 1 && TryRunInline(model, inputs[0], parent, cancellationToken) is { } inline)
        {
            return inline;
        }

        var items = new WorkItem[inputs.Count];
        for (var i = 0; i < items.Length; i++)
        {
            model.AddReference();
            items[i] = new WorkItem(model, inputs[i], now, new TaskCompletionSource<InferenceResult>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken, parent);
            if (!queue.Writer.TryWrite(items[i]))
            {
                model.Release();
                throw new InvalidOperationException("The inference engine is shutting down.");
            }
        }

        if (helpers > 0 && Volatile.Read(ref primaryBusy) == 1)
        {
            helpWanted.Release();
        }

        return items.Length == 1 ? One(items[0].Done.Task, cancellationToken) : Task.WhenAll(items.Select(i => i.Done.Task)).WaitAsync(cancellationToken);
    }

    /// <summary>
    /// A lone image while the engine is idle: its pass runs here, on the request's thread, with all threads (as worker 0
    /// would run it), sparing the hand-over to worker 0 and the wake-up of a pool thread for the answer. Null when the
    /// engine is busy, something is queued, the runner needs the workers' own threads, or a batching delay is set.
    /// Counted as busy meanwhile, so a worker that starts a pass now leaves this one its threads.
    /// </summary>
    private Task<InferenceResult[]>? TryRunInline(LoadedModel model, InferenceInput input, ActivityContext parent, CancellationToken cancellationToken)
    {
        if (!options.IdlePassesInline || options.MaxBatchDelayMilliseconds > 0 || !model.Runner.RunsOnAnyThread || Volatile.Read(ref stopping)
            || cancellationToken.IsCancellationRequested || queue.Reader.Count > 0 || Volatile.Read(ref primaryBusy) == 1
            || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            return null;
        }

        try
        {
            var threads = options.ThreadsPerPass > 0 ? options.ThreadsPerPass : torchThreads;
            var item = new WorkItem(model, input, Stopwatch.GetTimestamp(), null!, cancellationToken, parent);
            var (probabilities, forward) = Pass(model, [item], threads);
            Stats.RecordInline();
            return Task.FromResult<InferenceResult[]>([new InferenceResult(probabilities, 1, 0, forward.TotalMilliseconds)]);
        }
        catch (Exception ex)
        {
            return Task.FromException<InferenceResult[]>(ex);
        }
        finally
        {
            Interlocked.Decrement(ref busy);
        }
    }

    private static async Task<InferenceResult[]> One(Task<InferenceResult> result, CancellationToken cancellationToken) =>
        [await result.WaitAsync(cancellationToken).ConfigureAwait(false)];

    /// <summary>
    /// One image in the queue; it holds its own reference on <see cref="Model"/> until its pass has ended. <see cref="Parent"/>
    /// is the request's trace context, linked from the forward pass's span.
    /// </summary>
    private sealed record WorkItem(LoadedModel Model, InferenceInput Input, long Queued, TaskCompletionSource<InferenceResult> Done, CancellationToken Cancellation, ActivityContext Parent);

    /// <summary>
    /// Worker 0 reads the queue: it gathers a batch (waiting up to the batching delay) and runs it. When requests
    /// are left over while it runs, it wakes a helper.
    /// </summary>
    private void RunPrimary()
    {
        WorkerPriority.Lower(options.WorkerNice);
        try
        {
            var reader = queue.Reader;
            var batch = new List<WorkItem>(MaxBatchSize);
            while (Wait(reader, Timeout.InfiniteTimeSpan))
            {
                batch.Clear();
                var limit = BatchLimit(reader);
                var deadline = Stopwatch.GetTimestamp() + (long)(options.MaxBatchDelayMilliseconds * Stopwatch.Frequency / 1000);
                while (batch.Count < limit)
                {
                    if (reader.TryRead(out var item))
                    {
                        batch.Add(item);
                        continue;
                    }

                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                    if (batch.Count == 0 || wait <= TimeSpan.Zero || !Wait(reader, wait))
                    {
                        break;
                    }
                }

                if (batch.Count == 0)
                {
                    continue;
                }

                // Busy first, then look at the queue; InferAsync writes first, then looks at busy (both fenced):
                // a request that arrives now is seen by one of the two, so it never waits for a whole pass while a helper idles.
                Interlocked.Exchange(ref primaryBusy, 1);
                var shared = false;
                if (helpers > 0 && reader.Count > 0)
                {
                    helpWanted.Release();
                    shared = true;
                }

                // Alone, worker 0 uses all of Torch's threads; with helpers running or about to run, it leaves them theirs.
                RunBatch(batch, shared || Volatile.Read(ref busy) > 0 ? Math.Max(1, torchThreads - helpers) : torchThreads);
                Interlocked.Exchange(ref primaryBusy, 0);
            }
        }
        finally
        {
            Stopped();
        }
    }

    /// <summary>Helpers sleep until worker 0 is busy and requests are waiting, then take their share while that lasts.</summary>
    private void RunHelper()
    {
        WorkerPriority.Lower(options.WorkerNice);
        try
        {
            var reader = queue.Reader;
            var batch = new List<WorkItem>(MaxBatchSize);
            while (true)
            {
                helpWanted.Wait();
                if (Volatile.Read(ref stopping))
                {
                    return;
                }

                while (Volatile.Read(ref primaryBusy) == 1)
                {
                    batch.Clear();
                    var limit = BatchLimit(reader);
                    while (batch.Count < limit && reader.TryRead(out var item))
                    {
                        batch.Add(item);
                    }

                    if (batch.Count == 0)
                    {
                        break;
                    }

                    RunBatch(batch, 1);
                }
            }
        }
        finally
        {
            Stopped();
        }
    }

    private void RunBatch(List<WorkItem> batch, int threads)
    {
        Interlocked.Increment(ref busy);
        try
        {
            threads = options.ThreadsPerPass > 0 ? options.ThreadsPerPass : threads;
            var wanted = batch.Where(Wanted).ToArray();
            if (wanted.Length > 0 && Array.TrueForAll(wanted, i => i.Model == wanted[0].Model && i.Input.Floats is null == wanted[0].Input.Floats is null))
            {
                Forward(wanted[0].Model, wanted, threads); // the usual case: one model, one kind of input, no grouping
            }
            else
            {
                foreach (var group in wanted.GroupBy(i => (i.Model, Floats: i.Input.Floats is not null)))
                {
                    Forward(group.Key.Model, group.ToArray(), threads);
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref busy);
            foreach (var item in batch)
            {
                item.Model.Release(); // the pass has ended: the item's reference goes
            }

            batch.Clear(); // a worker waiting for work holds no request, input or model
        }
    }

    /// <summary>False (and the item cancelled) when its caller no longer waits: no pass is spent on it.</summary>
    private bool Wanted(WorkItem item)
    {
        if (!item.Cancellation.IsCancellationRequested)
        {
            return true;
        }

        item.Done.TrySetCanceled(item.Cancellation);
        Stats.RecordCancelled();
        return false;
    }

    private void Stopped()
    {
        if (Interlocked.Decrement(ref running) == 0)
        {
            stopped.TrySetResult();
        }
    }

    /// <summary>
    /// Without a batching delay, an idle worker takes its share of what is queued, so the other workers get
    /// the rest instead of waiting; with one, it gathers up to <see cref="ServingOptions.MaxBatchSize"/>.
    /// </summary>
    private int BatchLimit(ChannelReader<WorkItem> reader)
    {
        if (helpers == 0 || options.MaxBatchDelayMilliseconds > 0)
        {
            return MaxBatchSize;
        }

        var idle = Math.Max(1, WorkerCount - Volatile.Read(ref busy));
        return Math.Clamp((reader.Count + idle - 1) / idle, 1, MaxBatchSize);
    }

    /// <summary>Blocks this (dedicated) thread until an item can be read: false when the queue is complete or the wait timed out.</summary>
    private static bool Wait(ChannelReader<WorkItem> reader, TimeSpan timeout)
    {
        var ready = reader.WaitToReadAsync();
        if (ready.IsCompleted)
        {
            return ready.Result;
        }

        var task = ready.AsTask();
        return task.Wait(timeout) && task.Result;
    }

    private void Forward(LoadedModel model, WorkItem[] items, int threads)
    {
        float[] probabilities;
        TimeSpan forward;
        var classes = model.Metadata.ClassNames.Count;
        var started = Stopwatch.GetTimestamp();
        try
        {
            (probabilities, forward) = Pass(model, items, threads);
        }
        catch (Exception ex)
        {
            foreach (var item in items)
            {
                item.Done.TrySetException(ex);
            }

            return;
        }

        for (var i = 0; i < items.Length; i++)
        {
            var queued = Stopwatch.GetElapsedTime(items[i].Queued, started);
            items[i].Done.TrySetResult(new InferenceResult(probabilities.AsSpan(i * classes, classes).ToArray(), items.Length, queued.TotalMilliseconds, forward.TotalMilliseconds));
        }
    }

    /// <summary>One forward pass over the items, counted, timed and traced; a failure is logged, counted and thrown.</summary>
    private (float[] Probabilities, TimeSpan Forward) Pass(LoadedModel model, WorkItem[] items, int threads)
    {
        using var span = ServingMetrics.Source.HasListeners() ? StartForwardSpan(model, items, threads) : null;
        var started = Stopwatch.GetTimestamp();
        float[] probabilities;
        try
        {
            var inputs = new InferenceInput[items.Length];
            for (var i = 0; i < items.Length; i++)
            {
                inputs[i] = items[i].Input;
            }

            probabilities = model.Runner.Run(inputs, threads);
        }
        catch (Exception ex)
        {
            span?.SetStatus(ActivityStatusCode.Error, ex.Message);
            LogForwardFailed(logger, ex, model.Name, model.Version, items.Length);
            Stats.RecordFailure();
            throw;
        }

        var forward = Stopwatch.GetElapsedTime(started);
        Stats.Record(items.Length);
        if (threads == 1 || WorkerCount == 1)
        {
            model.ObserveImageMilliseconds(forward.TotalMilliseconds / items.Length); // what a pass costs under load: admission's estimate
        }

        return (probabilities, forward);
    }

    /// <summary>A span for one forward pass, linked to the request span of each image in it.</summary>
    private static Activity? StartForwardSpan(LoadedModel model, WorkItem[] items, int threads)
    {
        var links = items.Where(i => i.Parent != default).Select(i => i.Parent).Distinct().Select(c => new ActivityLink(c));
        var span = ServingMetrics.Source.StartActivity("nin.forward", ActivityKind.Internal, parentContext: default, tags: null, links: links);
        span?.SetTag("nin.model", model.Name);
        span?.SetTag("nin.version", model.Version);
        span?.SetTag("nin.engine", model.Engine);
        span?.SetTag("nin.batch_size", items.Length);
        span?.SetTag("nin.threads", threads);
        return span;
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        Volatile.Write(ref stopping, true);
        helpWanted.Release(Math.Max(1, helpers));
        await stopped.Task;
        helpWanted.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Forward pass of {Model} v{Version} failed for a batch of {Count}")]
    private static partial void LogForwardFailed(ILogger logger, Exception exception, string model, int version, int count);
}
