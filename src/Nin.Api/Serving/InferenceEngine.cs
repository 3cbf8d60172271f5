using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>One image to classify: native-size bytes (C×h×w) or an already preprocessed float tensor (C×S×S).</summary>
public sealed record InferenceInput(byte[]? Bytes, float[]? Floats);

/// <summary>Counts of what the batcher did, for tests, benchmarks and /metrics.</summary>
public sealed class ServingStats
{
    private long forwardPasses;
    private long images;
    private long largestBatch;
    private readonly long[] batchSizes = new long[1025];

    public long ForwardPasses => Interlocked.Read(ref forwardPasses);

    public long Images => Interlocked.Read(ref images);

    public long LargestBatch => Interlocked.Read(ref largestBatch);

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
/// A dynamic batcher in front of the served networks, like Triton's: one loop owns inference and
/// coalesces concurrent requests into one forward pass per model. Each pass runs in one dispose
/// scope under inference mode, with no await inside; outputs are copied to managed arrays before
/// the scope ends.
/// </summary>
public sealed partial class InferenceEngine : IAsyncDisposable
{
    public const string MeterName = "Nin.Serving";

    private readonly Channel<WorkItem> queue = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ServingOptions options;
    private readonly ILogger<InferenceEngine> logger;
    private readonly Task loop;
    private readonly Histogram<int> batchHistogram;
    private readonly Counter<long> imageCounter;

    public InferenceEngine(IOptions<ServingOptions> options, IMeterFactory meters, ILogger<InferenceEngine> logger)
    {
        this.options = options.Value;
        this.logger = logger;
        var meter = meters.Create(MeterName);
        batchHistogram = meter.CreateHistogram<int>("nin.inference.batch_size", "{image}", "Images per forward pass of the dynamic batcher");
        imageCounter = meter.CreateCounter<long>("nin.inference.images", "{image}", "Images classified");
        loop = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public ServingStats Stats { get; } = new();

    /// <summary>Softmax probabilities per input, in order. The caller holds a reference on <paramref name="model"/>.</summary>
    public Task<float[][]> InferAsync(LoadedModel model, IReadOnlyList<InferenceInput> inputs, CancellationToken cancellationToken = default)
    {
        var items = inputs.Select(i => new WorkItem(model, i, new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously))).ToArray();
        foreach (var item in items)
        {
            if (!queue.Writer.TryWrite(item))
            {
                throw new InvalidOperationException("The inference engine is shutting down.");
            }
        }

        return Task.WhenAll(items.Select(i => i.Done.Task)).WaitAsync(cancellationToken);
    }

    private sealed record WorkItem(LoadedModel Model, InferenceInput Input, TaskCompletionSource<float[]> Done);

    private async Task RunAsync()
    {
        var reader = queue.Reader;
        var batch = new List<WorkItem>(options.MaxBatchSize);
        while (await reader.WaitToReadAsync())
        {
            batch.Clear();
            var deadline = Stopwatch.GetTimestamp() + (long)(options.MaxBatchDelayMilliseconds * Stopwatch.Frequency / 1000);
            while (batch.Count < options.MaxBatchSize)
            {
                if (reader.TryRead(out var item))
                {
                    batch.Add(item);
                    continue;
                }

                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (batch.Count == 0 || wait <= TimeSpan.Zero)
                {
                    break;
                }

                using var timeout = new CancellationTokenSource(wait);
                try
                {
                    await reader.WaitToReadAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            foreach (var group in batch.GroupBy(i => (i.Model, Floats: i.Input.Floats is not null)))
            {
                Forward(group.Key.Model, group.ToArray());
            }
        }
    }

    private void Forward(LoadedModel model, WorkItem[] items)
    {
        float[] probabilities;
        var classes = model.Metadata.ClassNames.Count;
        try
        {
            probabilities = RunNetwork(model, items);
        }
        catch (Exception ex)
        {
            LogForwardFailed(logger, ex, model.Name, model.Version, items.Length);
            foreach (var item in items)
            {
                item.Done.TrySetException(ex);
            }

            return;
        }

        Stats.Record(items.Length);
        batchHistogram.Record(items.Length);
        imageCounter.Add(items.Length);
        for (var i = 0; i < items.Length; i++)
        {
            items[i].Done.TrySetResult(probabilities.AsSpan(i * classes, classes).ToArray());
        }
    }

    private static float[] RunNetwork(LoadedModel model, WorkItem[] items)
    {
        var meta = model.Metadata;
        var c = meta.InputChannels;
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var device = model.TorchDevice;
        Tensor input;
        if (items[0].Input.Floats is not null)
        {
            var size = meta.ImageSize;
            var flat = new float[items.Length * c * size * size];
            for (var i = 0; i < items.Length; i++)
            {
                items[i].Input.Floats!.CopyTo(flat, i * c * size * size);
            }

            input = tensor(flat, [items.Length, c, size, size]).to(device);
        }
        else
        {
            int h = meta.Preprocessing.NativeHeight, w = meta.Preprocessing.NativeWidth;
            var flat = new byte[items.Length * c * h * w];
            for (var i = 0; i < items.Length; i++)
            {
                items[i].Input.Bytes!.CopyTo(flat, i * c * h * w);
            }

            input = Preprocess.ToNetworkInput(tensor(flat, [items.Length, c, h, w], dtype: ScalarType.Byte).to(device), meta.ImageSize);
        }

        var probabilities = nn.functional.softmax(model.Network.forward(input), 1).cpu();
        return probabilities.data<float>().ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        await loop;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Forward pass of {Model} v{Version} failed for a batch of {Count}")]
    private static partial void LogForwardFailed(ILogger logger, Exception exception, string model, int version, int count);
}
