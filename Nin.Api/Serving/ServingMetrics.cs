using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Nin.Api.Serving;

/// <summary>Where one request's time went, in milliseconds, and the size of the forward pass that served it.</summary>
public readonly record struct StageTimes(double ReadMs, double DecodeMs, double QueueMs, double ForwardMs, double TotalMs, int BatchSize, double ExplainMs = 0);

/// <summary>
/// The data plane's instruments (meter <c>Nin.Serving</c>, exported at /metrics) and its per-version counters for
/// <c>GET /v2/models/{name}/stats</c>. Stage histograms are per request and labelled <c>model</c>, <c>version</c>,
/// <c>engine</c> and <c>protocol</c> (<c>predict</c>, <c>v2</c>, <c>grpc</c>); the ActivitySource of the same name
/// carries traces when OpenTelemetry tracing is on.
/// </summary>
public sealed class ServingMetrics
{
    public const string MeterName = "Nin.Serving";

    /// <summary>Spans of the data plane (request, decode, forward pass), exported when tracing is on.</summary>
    public static readonly ActivitySource Source = new(MeterName);

    // Seconds, from a fraction of a millisecond (a 28 px decode) to the request timeout.
    private static readonly double[] SecondsBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60];
    private static readonly int[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    private readonly Histogram<double> read;
    private readonly Histogram<double> decode;
    private readonly Histogram<double> queue;
    private readonly Histogram<double> forward;
    private readonly Histogram<double> total;
    private readonly Histogram<int> batch;
    private readonly Counter<long> images;
    private readonly Counter<long> shed;
    private readonly Counter<long> timeouts;
    private readonly Counter<long> failures;
    private readonly ConcurrentDictionary<(string Name, int Version), VersionStatistics> statistics = new();

    public ServingMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        Histogram<double> Seconds(string stage, string description) =>
            meter.CreateHistogram("nin.inference." + stage + ".duration", "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        read = Seconds("read", "Reading a request's body (images or tensors)");
        decode = Seconds("decode", "Decoding a request's images to the model's native input (the decode memory gate's wait included)");
        queue = Seconds("queue", "Time a request's images waited for their forward pass (the longest of them)");
        forward = Seconds("forward", "The forward pass that served a request's images (preprocessing and softmax included)");
        total = Seconds("request", "A request through the data plane, from its first byte read to its answer");
        batch = meter.CreateHistogram("nin.inference.batch_size", "{image}", "Images in the forward pass that served a request",
            tags: null, new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchBuckets });
        images = meter.CreateCounter<long>("nin.inference.images", "{image}", "Images classified");
        shed = meter.CreateCounter<long>("nin.inference.shed", "{request}", "Requests refused at admission (503 + Retry-After), by reason: queue full or service saturated");
        timeouts = meter.CreateCounter<long>("nin.inference.timeouts", "{request}", "Requests whose deadline passed (their work dropped), by the stage they were in");
        failures = meter.CreateCounter<long>("nin.inference.errors", "{request}", "Requests the data plane refused or failed, by kind");
    }

    public void RecordSuccess(string protocol, LoadedModel model, int count, in StageTimes t)
    {
        var tags = Tags(protocol, model);
        read.Record(t.ReadMs / 1000, tags);
        decode.Record(t.DecodeMs / 1000, tags);
        queue.Record(t.QueueMs / 1000, tags);
        forward.Record(t.ForwardMs / 1000, tags);
        total.Record(t.TotalMs / 1000, tags);
        batch.Record(t.BatchSize, tags);
        images.Add(count, tags);
        Statistics(model.Name, model.Version).Success(count, t);
    }

    /// <summary>A request refused at admission: <paramref name="reason"/> <c>queue</c> (forward work ahead) or <c>saturated</c> (the thread pool's delay).</summary>
    public void RecordShed(string protocol, string reason) =>
        shed.Add(1, new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("reason", reason));

    public void RecordTimeout(string protocol, string stage) =>
        timeouts.Add(1, new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("stage", stage));

    public void RecordFailure(string protocol, InferenceErrorKind kind, LoadedModel? model, double totalMs)
    {
        failures.Add(1, new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("kind", kind.ToString()));
        if (model is not null)
        {
            Statistics(model.Name, model.Version).Failure(totalMs);
        }
    }

    /// <summary>The counters of one version since this process started (zeros if it never served).</summary>
    public VersionStatistics Statistics(string name, int version) => statistics.GetOrAdd((name, version), _ => new VersionStatistics());

    private static TagList Tags(string protocol, LoadedModel model) => new()
    {
        { "model", model.Name },
        { "version", model.VersionText },
        { "engine", model.Engine },
        { "protocol", protocol },
    };
}

/// <summary>One version's request counters, in Triton's statistics terms (counts and cumulative nanoseconds).</summary>
public sealed class VersionStatistics
{
    private readonly Lock gate = new();
    private readonly Dictionary<int, (long Count, long Ns)> batches = [];

    public long SuccessCount { get; private set; }

    public long SuccessNs { get; private set; }

    public long FailCount { get; private set; }

    public long FailNs { get; private set; }

    public long QueueNs { get; private set; }

    public long DecodeNs { get; private set; }

    public long ForwardNs { get; private set; }

    /// <summary>Images classified.</summary>
    public long InferenceCount { get; private set; }

    /// <summary>Unix milliseconds of the last answer, 0 if none.</summary>
    public long LastInference { get; private set; }

    public IReadOnlyDictionary<int, (long Count, long Ns)> Batches
    {
        get
        {
            lock (gate)
            {
                return new Dictionary<int, (long, long)>(batches);
            }
        }
    }

    internal void Success(int count, in StageTimes t)
    {
        lock (gate)
        {
            SuccessCount++;
            SuccessNs += Ns(t.TotalMs);
            QueueNs += Ns(t.QueueMs);
            DecodeNs += Ns(t.DecodeMs);
            ForwardNs += Ns(t.ForwardMs);
            InferenceCount += count;
            LastInference = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var b = batches.GetValueOrDefault(t.BatchSize);
            batches[t.BatchSize] = (b.Count + 1, b.Ns + Ns(t.ForwardMs));
        }
    }

    internal void Failure(double totalMs)
    {
        lock (gate)
        {
            FailCount++;
            FailNs += Ns(totalMs);
        }
    }

    private static long Ns(double ms) => (long)(ms * 1_000_000);
}
