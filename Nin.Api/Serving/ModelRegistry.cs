using System.Diagnostics;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;
using Nin.Model.Runtime;

namespace Nin.Api.Serving;

/// <summary>
/// The versions loaded for serving. A version takes requests only once it has loaded and passed its warm-up: activating
/// one here (<see cref="PrepareAsync"/>) loads it before the active pointer moves, and a change made elsewhere (another
/// replica, through PostgreSQL) is loaded in the background. Until the new version is in, the old one keeps serving;
/// requests never wait for a load unless nothing is loaded at all. A version that fails to load is retried with
/// back-off (<see cref="ServingOptions.LoadRetryMaxSeconds"/>), never once per request, and <see cref="Status"/> says why
/// for readiness.
/// </summary>
public sealed partial class ModelRegistry : IDisposable
{
    private readonly ModelStore store;
    private readonly IOptions<TorchOptions> torch;
    private readonly ServingOptions options;
    private readonly InferenceEngine engine;
    private readonly NinOptions nin;
    private readonly ILogger<ModelRegistry> logger;
    private readonly Lock gate = new();
    private readonly SemaphoreSlim loadSlot = new(1, 1); // one load at a time (memory, cores); never held by a request
    private readonly LinkedList<LoadedModel> cache = new();
    private readonly Dictionary<(string Name, int Version), Task<LoadedModel>> loading = [];
    private readonly Dictionary<(string Name, int Version), LoadFailure> failures = [];
    private readonly FixedWindowRateLimiter? loads;
    private readonly CancellationTokenSource disposed = new();
    private LoadedModel? active;
    private Timer? retry;

    public ModelRegistry(ModelStore store, IOptions<TorchOptions> torch, IOptions<ServingOptions> options, IOptions<NinOptions> nin, InferenceEngine engine, ILogger<ModelRegistry> logger)
    {
        this.store = store;
        this.torch = torch;
        this.options = options.Value;
        this.nin = nin.Value;
        this.engine = engine;
        this.logger = logger;
        store.ActiveChanged += OnActiveChanged;
        store.VersionDeleted += OnVersionDeleted;
        loads = this.options.VersionLoadsPerMinute > 0
            ? new FixedWindowRateLimiter(new FixedWindowRateLimiterOptions
            {
                PermitLimit = this.options.VersionLoadsPerMinute,
                Window = TimeSpan.FromMinutes(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            })
            : null;
    }

    /// <summary>The engine that serves every version: <c>torch</c> or <c>onnxruntime</c> (<see cref="ServingOptions.Engine"/>).</summary>
    public string Engine => ServingEngines.Resolve(options.Engine, TorchRuntime.ResolveDevice(torch.Value.Device).ToString(), options.Precision);

    /// <summary>The served version, if any is loaded.</summary>
    public (string Name, int Version)? Current
    {
        get
        {
            var a = active;
            return a is null ? null : (a.Name, a.Version);
        }
    }

    /// <summary>Versions loaded on this replica now: the served one first, then the cached ones.</summary>
    public IReadOnlyList<(string Name, int Version)> Loaded
    {
        get
        {
            lock (gate)
            {
                return (active is { } a ? [(a.Name, a.Version)] : Array.Empty<(string, int)>()).Concat(cache.Select(m => (m.Name, m.Version))).ToArray();
            }
        }
    }

    /// <summary>What this replica serves next to what is active, and why they differ (for readiness).</summary>
    public ServingStatus Status
    {
        get
        {
            var wanted = store.Active;
            lock (gate)
            {
                var served = active is { } a ? new ActiveModel(a.Name, a.Version) : null;
                var failure = wanted is not null && failures.TryGetValue((wanted.Name, wanted.Version), out var f) ? f : null;
                var isLoading = wanted is not null && loading.ContainsKey((wanted.Name, wanted.Version));
                return new ServingStatus(wanted, served, isLoading, failure);
            }
        }
    }

    /// <summary>Why a version could not be loaded on this replica, and when it is tried again.</summary>
    public LoadFailure? FailureOf(string name, int version)
    {
        lock (gate)
        {
            return failures.GetValueOrDefault((name, version));
        }
    }

    /// <summary>
    /// The model to serve a request with, referenced (call <see cref="LoadedModel.Release"/>), or null when nothing is
    /// active or the asked version does not exist. With <paramref name="boundedLoads"/> (callers without a key), loading a
    /// version that is neither active nor cached counts against <see cref="ServingOptions.VersionLoadsPerMinute"/> and
    /// throws <see cref="VersionLoadLimitException"/> beyond it. A version that cannot be loaded throws
    /// <see cref="ModelLoadException"/> (with its cause) until its next retry is due.
    /// </summary>
    public async Task<LoadedModel?> AcquireAsync(string? name, int? version, CancellationToken cancellationToken, bool boundedLoads = false)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var model = name is null ? await ActiveAsync(cancellationToken) : await SpecificAsync(name, version, boundedLoads, cancellationToken);
            if (model is null)
            {
                return null;
            }

            if (model.TryAcquire())
            {
                return model;
            }

            // Retired between lookup and acquire (a swap): look again.
        }

        return null;
    }

    /// <summary>Loads the active version now (at start-up, so the first request does not pay for it).</summary>
    public Task WarmUpAsync(CancellationToken cancellationToken) => ActiveAsync(cancellationToken);

    /// <summary>
    /// Loads and warms a version on this replica before it is made active (safe activation): when this returns, the
    /// version is loaded and an activation swaps to it at once. Throws <see cref="ModelLoadException"/> naming the cause
    /// when it cannot be loaded; nothing changes then. An explicit activation does not wait for a back-off.
    /// </summary>
    public async Task PrepareAsync(string name, int version, CancellationToken cancellationToken)
    {
        var key = (name, version);
        Task<LoadedModel> load;
        lock (gate)
        {
            if ((active is { } a && a.Name == name && a.Version == version) || Cached(name, version) is not null)
            {
                return;
            }

            failures.Remove(key);
            load = StartLoad(key);
        }

        await load.WaitAsync(cancellationToken);
    }

    private async Task<LoadedModel?> ActiveAsync(CancellationToken cancellationToken)
    {
        var wanted = store.Active;
        var current = active;
        if (wanted is null)
        {
            return null;
        }

        if (current is not null && current.Name == wanted.Name && current.Version == wanted.Version)
        {
            return current;
        }

        var load = Reconcile();
        if (current is not null)
        {
            return current; // the old version serves until the new one is in
        }

        // Nothing loaded yet (start-up, or the first activation): this request waits for the one load, not its own.
        if (load is null)
        {
            if (FailureOf(wanted.Name, wanted.Version) is { } failure)
            {
                throw new ModelLoadException(wanted.Name, wanted.Version, failure.Cause);
            }

            return active;
        }

        await load.WaitAsync(cancellationToken);
        _ = Reconcile();
        return active;
    }

    /// <summary>
    /// Brings what this replica serves in line with the active pointer: promotes the wanted version if it is loaded,
    /// else starts its load (unless one runs, or it failed and its retry is not due). Returns the load to wait for, if any.
    /// </summary>
    private Task<LoadedModel>? Reconcile()
    {
        var wanted = store.Active;
        LoadedModel? retired = null;
        LoadedModel? promoted = null;
        Task<LoadedModel>? load = null;
        lock (gate)
        {
            if (disposed.IsCancellationRequested || wanted is null || (active is { } a && a.Name == wanted.Name && a.Version == wanted.Version))
            {
                return null;
            }

            var key = (wanted.Name, wanted.Version);
            if (Cached(wanted.Name, wanted.Version) is { } node)
            {
                cache.Remove(node);
                retired = active;
                active = promoted = node.Value;
                failures.Remove(key);
            }
            else if (loading.TryGetValue(key, out var running))
            {
                load = running;
            }
            else if (failures.TryGetValue(key, out var failure) && failure.RetryAt > DateTimeOffset.UtcNow)
            {
                ScheduleRetry(failure.RetryAt);
            }
            else
            {
                load = StartLoad(key);
            }
        }

        retired?.Retire(); // disposed after its last request
        if (promoted is not null)
        {
            LogServing(logger, promoted.Name, promoted.Version, promoted.Device, promoted.Engine, promoted.Precision.Precision, promoted.Precision.Reason);
        }

        return load;
    }

    /// <summary>
    /// Drops a model's cached versions from this replica (Triton's repository unload); the served version and the
    /// active one stay. Each is disposed after its last request. Returns how many left.
    /// </summary>
    public int Unload(string name)
    {
        var wanted = store.Active;
        List<LoadedModel> dropped = [];
        lock (gate)
        {
            for (var node = cache.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Name == name && !(wanted is not null && wanted.Name == name && wanted.Version == node.Value.Version))
                {
                    cache.Remove(node);
                    dropped.Add(node.Value);
                }

                node = next;
            }
        }

        foreach (var model in dropped)
        {
            model.Retire();
        }

        return dropped.Count;
    }

    /// <summary>The cache's node of a version (call under <see cref="gate"/>).</summary>
    private LinkedListNode<LoadedModel>? Cached(string name, int version)
    {
        for (var node = cache.First; node is not null; node = node.Next)
        {
            if (node.Value.Name == name && node.Value.Version == version)
            {
                return node;
            }
        }

        return null;
    }

    private async Task<LoadedModel?> SpecificAsync(string name, int? version, bool boundedLoads, CancellationToken cancellationToken)
    {
        if (version is null && active is { } served && served.Name == name)
        {
            return served; // the model's served version, also while a newer one loads
        }

        var resolved = version ?? (store.Active is { } a && a.Name == name ? a.Version : store.LatestVersion(name));
        if (resolved is null)
        {
            return null;
        }

        var current = active;
        if (current is not null && current.Name == name && current.Version == resolved)
        {
            return current;
        }

        var key = (name, resolved.Value);
        Task<LoadedModel> load;
        lock (gate)
        {
            if (Cached(name, resolved.Value) is { } hit)
            {
                return hit.Value;
            }

            if (failures.TryGetValue(key, out var failure) && failure.RetryAt > DateTimeOffset.UtcNow)
            {
                throw new ModelLoadException(name, resolved.Value, failure.Cause);
            }

            if (!loading.TryGetValue(key, out load!))
            {
                if (store.Find(name, resolved.Value) is null)
                {
                    return null;
                }

                if (boundedLoads && loads is not null)
                {
                    using var lease = loads.AttemptAcquire();
                    if (!lease.IsAcquired)
                    {
                        throw new VersionLoadLimitException(lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromMinutes(1));
                    }
                }

                load = StartLoad(key);
            }
        }

        return await load.WaitAsync(cancellationToken);
    }

    /// <summary>Starts loading a version in the background (call under <see cref="gate"/>); its end lands in the cache or the failures.</summary>
    private Task<LoadedModel> StartLoad((string Name, int Version) key)
    {
        var task = Task.Run(() => LoadAsync(key));
        loading[key] = task;
        _ = task.ContinueWith(t => LoadEnded(key, t), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    private async Task<LoadedModel> LoadAsync((string Name, int Version) key)
    {
        await loadSlot.WaitAsync(disposed.Token);
        try
        {
            var watch = Stopwatch.StartNew();

            // Reading, building sessions and timing warm-up passes take up to seconds: a thread of its own, so the
            // requests the old version keeps serving meanwhile do not queue behind it for a thread-pool thread.
            var model = await Task.Factory.StartNew(() =>
            {
                var loaded = Load(key.Name, key.Version) ?? throw new ModelLoadException(key.Name, key.Version, "it is not in the model store.");
                try
                {
                    WarmUp(loaded);
                }
                catch
                {
                    loaded.Retire();
                    throw;
                }

                return loaded;
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            LogLoaded(logger, key.Name, key.Version, watch.Elapsed.TotalMilliseconds, model.ImageMilliseconds);
            return model;
        }
        catch (ModelLoadException)
        {
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new ModelLoadException(key.Name, key.Version, ClientErrors.Scrub(ex.Message, nin), ex);
        }
        finally
        {
            loadSlot.Release();
        }
    }

    /// <summary>A load ended: the model joins the cache (the active one is promoted from there), or the failure is kept for back-off.</summary>
    private void LoadEnded((string Name, int Version) key, Task<LoadedModel> task)
    {
        LoadedModel? evicted = null;
        lock (gate)
        {
            loading.Remove(key);
            if (task.IsCompletedSuccessfully)
            {
                failures.Remove(key);
                if (disposed.IsCancellationRequested)
                {
                    evicted = task.Result;
                }
                else
                {
                    cache.AddFirst(task.Result);
                    var wanted = store.Active;
                    // Keep at least the new one (a request waits for it); never evict the version about to be served.
                    while (cache.Count > Math.Max(1, options.CachedVersions) && cache.Last!.Value is var last && !(wanted is not null && last.Name == wanted.Name && last.Version == wanted.Version))
                    {
                        cache.RemoveLast();
                        last.Retire();
                    }
                }
            }
            else if (task.Exception?.GetBaseException() is { } error && !DurableFile.IsDiskFull(task.Exception))
            {
                // (A write refused for want of disk space is not the version's fault: no back-off, the next try loads it.)
                var previous = failures.GetValueOrDefault(key);
                var attempts = (previous?.Attempts ?? 0) + 1;
                var wait = TimeSpan.FromSeconds(Math.Min(Math.Max(1, options.LoadRetryMaxSeconds), Math.Pow(2, attempts - 1)));
                var cause = error is ModelLoadException load ? load.Cause : ClientErrors.Scrub(error.Message, nin);
                failures[key] = new LoadFailure(cause, attempts, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow + wait);
                LogLoadFailed(logger, key.Name, key.Version, attempts, cause, wait.TotalSeconds);
                if (store.Active is { } wanted && wanted.Name == key.Name && wanted.Version == key.Version)
                {
                    ScheduleRetry(DateTimeOffset.UtcNow + wait);
                }
            }
        }

        evicted?.Retire();
        if (task.IsCompletedSuccessfully)
        {
            _ = Reconcile();
        }
    }

    /// <summary>One timer for the next retry of the active version's load (call under <see cref="gate"/>).</summary>
    private void ScheduleRetry(DateTimeOffset at)
    {
        if (disposed.IsCancellationRequested)
        {
            return;
        }

        var due = at - DateTimeOffset.UtcNow;
        retry ??= new Timer(_ => OnActiveChanged(store.Active));
        retry.Change(due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// A version whose serving files changed (it was quantized): cached copies are dropped, and if it is the active one it
    /// is loaded again and swapped in like an activation (the old instance serves until then), so its precision is decided anew.
    /// </summary>
    public async Task ReloadAsync(string name, int version, CancellationToken cancellationToken)
    {
        OnVersionDeleted(name, version);
        if (active is not { } current || current.Name != name || current.Version != version)
        {
            return;
        }

        var fresh = await LoadAsync((name, version)).WaitAsync(cancellationToken);
        lock (gate)
        {
            if (!ReferenceEquals(active, current))
            {
                fresh.Retire(); // another activation came first
                return;
            }

            active = fresh;
        }

        current.Retire();
        LogServing(logger, fresh.Name, fresh.Version, fresh.Device, fresh.Engine, fresh.Precision.Precision, fresh.Precision.Reason);
    }

    // Passes on blank images before the version takes requests: an engine's first pass allocates and plans (ONNX Runtime's
    // arenas, cuDNN's algorithms), and that cost is paid here, not by the first client after a swap. A version whose pass
    // fails cannot serve: its load fails. The timed pass of a full batch on one thread is admission's first estimate.
    private void WarmUp(LoadedModel model)
    {
        var side = model.Metadata.ImageSize;
        var blank = new InferenceInput(null, new float[model.Metadata.InputChannels * side * side]);
        // One thread: a load runs on a pool thread, and a Torch thread count set there would stay with that thread (and
        // change the numerics of whatever Torch work it runs next); passes under load run on one thread anyway.
        var probabilities = model.Runner.Run([blank], 1);
        if (probabilities.Length != model.Metadata.ClassNames.Count)
        {
            throw new ModelLoadException(model.Name, model.Version, $"its warm-up pass gave {probabilities.Length} scores for {model.Metadata.ClassNames.Count} classes.");
        }

        var batch = Enumerable.Repeat(blank, engine.MaxBatchSize).ToArray();
        model.Runner.Run(batch, 1);
        var watch = Stopwatch.StartNew();
        model.Runner.Run(batch, 1);
        model.ObserveImageMilliseconds(watch.Elapsed.TotalMilliseconds / batch.Length);
    }

    private LoadedModel? Load(string name, int version)
    {
        var info = store.Find(name, version);
        if (info is null)
        {
            return null;
        }

        var device = TorchRuntime.ResolveDevice(torch.Value.Device);
        if (Engine == OnnxModelRunner.EngineName)
        {
            var metadata = Checkpoint.ReadMetadata(info.Directory);
            var threads = options.ThreadsPerPass > 0 ? [options.ThreadsPerPass] : new[] { Math.Max(1, TorchRuntime.Info.Threads), 1 };
            var (precision, int8) = ServingPrecision.ForOnnx(ServingPrecision.Requested(options, name, version), Int8Acceleration.Current,
                () => Int8Cache.ForServing(info.Directory, metadata, options.Int8MarginPoints));
            var cuda = int8 is null && ServingEngines.OnnxOnCuda(device.ToString()); // int8 is for the CPU's integer kernels
            OnnxModelRunner Runner() => new(int8 ?? OnnxCache.Ensure(info.Directory), metadata, threads, cuda, options.OnnxSpinning);
            try
            {
                return new LoadedModel(name, version, Runner(), metadata, precision);
            }
            catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException ex) when (int8 is null && OnnxCache.Cached(info.Directory) is { } cached)
            {
                // A damaged cached export: made again from the checkpoint (whose weights are checked against their hash).
                LogOnnxRebuilt(logger, name, version, ex.Message);
                File.Delete(cached);
                return new LoadedModel(name, version, Runner(), metadata, precision);
            }
        }

        var (network, loaded) = Checkpoint.Load(info.Directory, device);
        var asked = ServingPrecision.Normalize(options.Precision);
        var torchPrecision = ServingPrecision.IsHalf(asked) || asked == ServingPrecision.Fp32
            ? new PrecisionChoice(asked, $"Serving:Precision is {asked}")
            : new PrecisionChoice(ServingPrecision.Fp32, $"Serving:Precision is {asked}; the TorchSharp engine serves fp32 (int8 is ONNX Runtime's)");
        return new LoadedModel(name, version, new TorchModelRunner(network, loaded, device, ServingPrecision.ScalarType(asked)), loaded, torchPrecision);
    }

    /// <summary>The precision the active version serves in and why; null while none is loaded.</summary>
    public PrecisionChoice? ActivePrecision => active?.Precision;

    // The pointer moved (here, after PrepareAsync, or on another replica): swap now if the version is loaded, else load it
    // in the background while the old one keeps serving.
    private void OnActiveChanged(ActiveModel? model)
    {
        try
        {
            _ = Reconcile();
        }
        catch (Exception ex)
        {
            LogReconcileFailed(logger, ex, model?.Name ?? "-", model?.Version ?? 0);
        }
    }

    /// <summary>A deleted version is no longer served from the cache: it is dropped, and disposed after its last request.</summary>
    private void OnVersionDeleted(string name, int version)
    {
        lock (gate)
        {
            failures.Remove((name, version));
            for (var node = cache.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Name == name && node.Value.Version == version)
                {
                    node.Value.Retire();
                    cache.Remove(node);
                }

                node = next;
            }
        }
    }

    public void Dispose()
    {
        store.ActiveChanged -= OnActiveChanged;
        store.VersionDeleted -= OnVersionDeleted;
        disposed.Cancel();
        loads?.Dispose();
        lock (gate)
        {
            retry?.Dispose();
            active?.Retire();
            foreach (var m in cache)
            {
                m.Retire();
            }

            cache.Clear();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving model {Model} version {Version} on {Device} with {Engine} in {Precision} ({PrecisionReason})")]
    private static partial void LogServing(ILogger logger, string model, int version, string device, string engine, string precision, string precisionReason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded model {Model} version {Version} in {Milliseconds:F0} ms ({ImageMilliseconds:F2} ms per image on one worker)")]
    private static partial void LogLoaded(ILogger logger, string model, int version, double milliseconds, double imageMilliseconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "Model {Model} version {Version} could not be loaded (attempt {Attempt}): {Cause}; next attempt in {RetrySeconds:F0} s")]
    private static partial void LogLoadFailed(ILogger logger, string model, int version, int attempt, string cause, double retrySeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: its cached ONNX file does not load ({Reason}); exporting it again from the checkpoint")]
    private static partial void LogOnnxRebuilt(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not bring serving in line with the active model {Model} version {Version}")]
    private static partial void LogReconcileFailed(ILogger logger, Exception exception, string model, int version);
}

/// <summary>Why a version did not load on this replica: the cause, how many attempts failed, and when the next is due.</summary>
public sealed record LoadFailure(string Cause, int Attempts, DateTimeOffset At, DateTimeOffset RetryAt);

/// <summary>The active version, the one this replica serves, whether the active one is loading, and its last load failure.</summary>
public sealed record ServingStatus(ActiveModel? Wanted, ActiveModel? Served, bool Loading, LoadFailure? Failure);

/// <summary>A version that cannot be loaded for serving; <see cref="Cause"/> is fit for the client (no paths).</summary>
public sealed class ModelLoadException(string name, int version, string cause, Exception? inner = null)
    : Exception($"Model '{name}' version {version} cannot be loaded: {cause}", inner)
{
    public string Name { get; } = name;

    public int Version { get; } = version;

    public string Cause { get; } = cause;
}

/// <summary>Too many loads of non-active versions by callers without a key: 429, retry after <see cref="RetryAfter"/>.</summary>
public sealed class VersionLoadLimitException(TimeSpan retryAfter)
    : Exception("Too many loads of versions that are not active; retry later, choose the active version, or send an API key.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
