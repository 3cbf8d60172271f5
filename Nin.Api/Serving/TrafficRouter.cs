using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Nin.Model.Checkpoints;

namespace Nin.Api.Serving;

/// <summary>Agreement of a shadow version with the version that answered, overall and per class the answer gave.</summary>
public sealed class ShadowStatistics(int shadowVersion, int classes)
{
    private readonly Lock gate = new();
    private readonly long[] perClass = new long[classes];
    private readonly long[] agreedPerClass = new long[classes];

    public int ShadowVersion { get; } = shadowVersion;

    public long Images { get; private set; }

    public long Agreed { get; private set; }

    /// <summary>Copies not run because the shadow was still busy with earlier ones (shadowing never queues behind itself).</summary>
    public long Skipped { get; private set; }

    /// <summary>Copies whose shadow pass failed (the version could not be loaded or its pass threw).</summary>
    public long Failed { get; private set; }

    public (long Images, long Agreed)[] PerClass
    {
        get
        {
            lock (gate)
            {
                return [.. perClass.Select((n, i) => (n, agreedPerClass[i]))];
            }
        }
    }

    internal void Record(int answeredClass, bool agreed)
    {
        lock (gate)
        {
            Images++;
            if (answeredClass >= 0 && answeredClass < perClass.Length)
            {
                perClass[answeredClass]++;
                if (agreed)
                {
                    agreedPerClass[answeredClass]++;
                }
            }

            if (agreed)
            {
                Agreed++;
            }
        }
    }

    internal void Skip()
    {
        lock (gate)
        {
            Skipped++;
        }
    }

    internal void Fail()
    {
        lock (gate)
        {
            Failed++;
        }
    }
}

/// <summary>
/// Applies each model's traffic split (<see cref="TrafficSplit"/>, <c>PUT /models/{name}/traffic</c>) to requests that
/// name no version: a stable hash of the client's <c>X-Traffic-Key</c> when it sends one (the same key reaches the same
/// version on every replica), else a random draw. The split is re-read from the shared store folder at most once a
/// second, so a change reaches every replica within about a second. Shadow copies run after the answer, on the
/// batcher, at most <see cref="ShadowCopiesPerWorker"/> per inference worker in flight (beyond that a copy is skipped
/// and counted), and only their agreement is kept.
/// </summary>
public sealed class TrafficRouter
{
    public const string KeyHeader = "X-Traffic-Key";

    /// <summary>Shadow copies in flight per inference worker; beyond that a copy is skipped (shadowing never builds a backlog).</summary>
    public const int ShadowCopiesPerWorker = 4;

    private static readonly TimeSpan Refresh = TimeSpan.FromSeconds(1);

    private readonly ModelStore store;
    private readonly InferenceEngine engine;
    private readonly ModelRegistry registry;
    private readonly ILogger<TrafficRouter> logger;
    private readonly ConcurrentDictionary<string, (TrafficSplit? Split, DateTime Checked, DateTime Written)> splits = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ShadowStatistics> shadows = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim shadowSlots;
    private readonly Counter<long> shadowImages;

    public TrafficRouter(ModelStore store, InferenceEngine engine, ModelRegistry registry, IMeterFactory meters, ILogger<TrafficRouter> logger)
    {
        this.store = store;
        this.engine = engine;
        this.registry = registry;
        this.logger = logger;
        shadowSlots = new SemaphoreSlim(ShadowCopiesPerWorker * Math.Max(1, engine.WorkerCount));
        shadowImages = meters.Create(ServingMetrics.MeterName).CreateCounter<long>("nin.inference.shadow.images", "{image}",
            "Images a shadow version classified from copies of requests, by whether it agreed with the version that answered");
    }

    /// <summary>The model's split as this replica applies it now (re-read when a second old).</summary>
    public TrafficSplit? Split(string name)
    {
        var now = DateTime.UtcNow;
        if (splits.TryGetValue(name, out var known) && now - known.Checked < Refresh)
        {
            return known.Split;
        }

        var path = TrafficSplit.PathFor(store.Root, name);
        var written = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : DateTime.MinValue;
        var split = known.Checked != default && written == known.Written ? known.Split : written == DateTime.MinValue ? null : TrafficSplit.Read(store.Root, name);
        splits[name] = (split, now, written);
        return split;
    }

    /// <summary>Forgets the cached split (this replica changed it): the next request reads it again.</summary>
    public void Invalidate(string name) => splits.TryRemove(name, out _);

    /// <summary>The version a request without one goes to, or null when the model has no split.</summary>
    public int? Route(string name, string? key)
    {
        if (Split(name) is not { } split)
        {
            return null;
        }

        var u = string.IsNullOrEmpty(key) ? Random.Shared.NextDouble() : TrafficSplit.Point(name, key);
        return split.Pick(u);
    }

    /// <summary>The shadow's agreement so far on this replica (since the process started or the shadow changed), or null.</summary>
    public ShadowStatistics? Shadow(string name) => shadows.TryGetValue(name, out var s) ? s : null;

    /// <summary>
    /// Sends a copy of an answered request to the model's shadow version, if it has one other than the one that answered,
    /// without waiting for it. The copy's answer is compared with <paramref name="answered"/> and dropped.
    /// </summary>
    public void Mirror(LoadedModel served, IReadOnlyList<InferenceInput> inputs, InferenceResult[] answered)
    {
        if (Split(served.Name) is not { Shadow: { } version } || version == served.Version)
        {
            return;
        }

        var stats = shadows.AddOrUpdate(served.Name,
            _ => new ShadowStatistics(version, served.Metadata.ClassNames.Count),
            (_, s) => s.ShadowVersion == version ? s : new ShadowStatistics(version, served.Metadata.ClassNames.Count));
        if (!shadowSlots.Wait(0))
        {
            stats.Skip();
            return;
        }

        _ = Task.Run(async () =>
        {
            LoadedModel? shadow = null;
            try
            {
                shadow = await registry.AcquireAsync(served.Name, version, CancellationToken.None);
                if (shadow is null)
                {
                    stats.Fail();
                    return;
                }

                var results = await engine.InferAsync(shadow, inputs, CancellationToken.None);
                for (var i = 0; i < results.Length; i++)
                {
                    int a = OpenInference.ArgMax(answered[i].Probabilities), b = OpenInference.ArgMax(results[i].Probabilities);
                    stats.Record(a, a == b);
                    shadowImages.Add(1, new KeyValuePair<string, object?>("model", served.Name), new KeyValuePair<string, object?>("version", shadow.VersionText),
                        new KeyValuePair<string, object?>("agreement", a == b ? "agree" : "disagree"));
                }
            }
            catch (Exception ex)
            {
                stats.Fail();
                logger.LogWarning(ex, "Shadow pass of {Model} v{Version} failed", served.Name, version);
            }
            finally
            {
                shadow?.Release();
                shadowSlots.Release();
            }
        });
    }
}
