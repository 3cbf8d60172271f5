using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;
using Nin.Model.Runtime;

namespace Nin.Api.Serving;

/// <summary>
/// The versions loaded for serving. The active one is swapped when another is activated: the new
/// version is loaded first, then new requests use it while requests in flight finish on the old one.
/// </summary>
public sealed partial class ModelRegistry : IDisposable
{
    private readonly ModelStore store;
    private readonly IOptions<TorchOptions> torch;
    private readonly ServingOptions options;
    private readonly ILogger<ModelRegistry> logger;
    private readonly Lock gate = new();
    private readonly SemaphoreSlim loading = new(1, 1);
    private readonly LinkedList<LoadedModel> cache = new();
    private readonly FixedWindowRateLimiter? loads;
    private LoadedModel? active;

    public ModelRegistry(ModelStore store, IOptions<TorchOptions> torch, IOptions<ServingOptions> options, ILogger<ModelRegistry> logger)
    {
        this.store = store;
        this.torch = torch;
        this.options = options.Value;
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

    /// <summary>
    /// The model to serve a request with, referenced (call <see cref="LoadedModel.Release"/>), or null when
    /// nothing is active or the asked version does not exist. With <paramref name="boundedLoads"/> (callers without a
    /// key), loading a version that is neither active nor cached counts against <see cref="ServingOptions.VersionLoadsPerMinute"/>
    /// and throws <see cref="VersionLoadLimitException"/> beyond it.
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

        await loading.WaitAsync(cancellationToken);
        try
        {
            wanted = store.Active;
            if (wanted is null)
            {
                return null;
            }

            current = active;
            if (current is not null && current.Name == wanted.Name && current.Version == wanted.Version)
            {
                return current;
            }

            var loaded = Load(wanted.Name, wanted.Version);
            if (loaded is null)
            {
                return current;
            }

            WarmUp(loaded);
            lock (gate)
            {
                active = loaded;
            }

            current?.Retire();
            LogServing(logger, loaded.Name, loaded.Version, loaded.Device, loaded.Engine, loaded.Precision.Precision, loaded.Precision.Reason);
            return loaded;
        }
        finally
        {
            loading.Release();
        }
    }

    private async Task<LoadedModel?> SpecificAsync(string name, int? version, bool boundedLoads, CancellationToken cancellationToken)
    {
        var resolved = version ?? (store.Active is { } a && a.Name == name ? a.Version : store.Latest(name)?.Version);
        if (resolved is null)
        {
            return null;
        }

        var current = active;
        if (current is not null && current.Name == name && current.Version == resolved)
        {
            return current;
        }

        lock (gate)
        {
            if (cache.FirstOrDefault(m => m.Name == name && m.Version == resolved) is { } hit)
            {
                return hit;
            }
        }

        await loading.WaitAsync(cancellationToken);
        try
        {
            lock (gate)
            {
                if (cache.FirstOrDefault(m => m.Name == name && m.Version == resolved) is { } hit)
                {
                    return hit;
                }
            }

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

            var loaded = Load(name, resolved.Value);
            if (loaded is null)
            {
                return null;
            }

            lock (gate)
            {
                cache.AddFirst(loaded);
                while (cache.Count > Math.Max(0, options.CachedVersions))
                {
                    cache.Last!.Value.Retire();
                    cache.RemoveLast();
                }
            }

            return loaded;
        }
        finally
        {
            loading.Release();
        }
    }

    /// <summary>
    /// A version whose serving files changed (it was quantized): cached copies are dropped, and if it is the active one it
    /// is loaded again and swapped in like an activation, so its precision is decided anew.
    /// </summary>
    public async Task ReloadAsync(string name, int version, CancellationToken cancellationToken)
    {
        OnVersionDeleted(name, version);
        await loading.WaitAsync(cancellationToken);
        try
        {
            var current = active;
            if (current is null || current.Name != name || current.Version != version || Load(name, version) is not { } loaded)
            {
                return;
            }

            WarmUp(loaded);
            lock (gate)
            {
                active = loaded;
            }

            current.Retire();
            LogServing(logger, loaded.Name, loaded.Version, loaded.Device, loaded.Engine, loaded.Precision.Precision, loaded.Precision.Reason);
        }
        finally
        {
            loading.Release();
        }
    }

    // One pass on a blank image before the version takes requests: an engine's first pass allocates and plans (ONNX
    // Runtime's arenas, cuDNN's algorithms), and that cost is paid here, not by the first client after a swap.
    private void WarmUp(LoadedModel model)
    {
        try
        {
            var side = model.Metadata.ImageSize;
            _ = model.Runner.Run([new InferenceInput(null, new float[model.Metadata.InputChannels * side * side])], 1);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogWarmUpFailed(logger, model.Name, model.Version, ex.Message);
        }
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
            var (precision, int8) = ServingPrecision.ForOnnx(ServingPrecision.Requested(options, name, version), Int8Acceleration.Current,
                () => Int8Cache.ForServing(info.Directory, metadata, options.Int8MarginPoints));
            var onnx = int8 ?? OnnxCache.Ensure(info.Directory);
            var threads = options.ThreadsPerPass > 0 ? [options.ThreadsPerPass] : new[] { Math.Max(1, TorchRuntime.Info.Threads), 1 };
            var cuda = int8 is null && ServingEngines.OnnxOnCuda(device.ToString()); // int8 is for the CPU's integer kernels
            return new LoadedModel(name, version, new OnnxModelRunner(onnx, metadata, threads, cuda, options.OnnxSpinning), metadata, precision);
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

    private void OnActiveChanged(ActiveModel? model)
    {
        // Load the new version in the background; until it is in, the old one keeps serving.
        _ = Task.Run(async () =>
        {
            try
            {
                await ActiveAsync(CancellationToken.None);
            }
            catch (Exception ex)
            {
                LogLoadFailed(logger, ex, model?.Name ?? "-", model?.Version ?? 0);
            }
        });
    }

    /// <summary>A deleted version is no longer served from the cache: it is dropped, and disposed after its last request.</summary>
    private void OnVersionDeleted(string name, int version)
    {
        lock (gate)
        {
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
        loads?.Dispose();
        lock (gate)
        {
            active?.Retire();
            foreach (var m in cache)
            {
                m.Retire();
            }

            cache.Clear();
        }

        loading.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving model {Model} version {Version} on {Device} with {Engine} in {Precision} ({PrecisionReason})")]
    private static partial void LogServing(ILogger logger, string model, int version, string device, string engine, string precision, string precisionReason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: the warm-up pass failed ({Reason}); it serves anyway")]
    private static partial void LogWarmUpFailed(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not load model {Model} version {Version}")]
    private static partial void LogLoadFailed(ILogger logger, Exception exception, string model, int version);
}

/// <summary>Too many loads of non-active versions by callers without a key: 429, retry after <see cref="RetryAfter"/>.</summary>
public sealed class VersionLoadLimitException(TimeSpan retryAfter)
    : Exception("Too many loads of versions that are not active; retry later, choose the active version, or send an API key.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
