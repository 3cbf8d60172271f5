using System.Diagnostics;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Imaging;

namespace Nin.Api.Serving;

/// <summary>An encoded image as received (PNG, JPEG, ...), named by its file name when it had one.</summary>
public readonly record struct EncodedImage(string? Name, ReadOnlyMemory<byte> Data);

/// <summary>An FP32 tensor already preprocessed: shape [N, C, S, S], values row-major.</summary>
public sealed record FloatTensor(long[] Shape, ReadOnlyMemory<float> Values);

/// <summary>
/// One inference request in protocol-neutral terms: which model (null: the active one), the images or the tensor,
/// the client's deadline, and what the adapter measured already (reading the body).
/// </summary>
public sealed class InferenceCall
{
    /// <summary><c>predict</c>, <c>v2</c> or <c>grpc</c>: the metrics' <c>protocol</c> label.</summary>
    public required string Protocol { get; init; }

    public string? Model { get; init; }

    public int? Version { get; init; }

    public IReadOnlyList<EncodedImage>? Images { get; init; }

    public FloatTensor? Tensor { get; init; }

    public InvertMode Invert { get; init; } = InvertMode.Auto;

    /// <summary>The caller sent a valid key: its loads of non-active versions are not counted.</summary>
    public bool Keyed { get; init; }

    /// <summary>The client's deadline, from when the request arrived; null: only the server's request timeout.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>When the request arrived (<see cref="Stopwatch.GetTimestamp"/>): deadlines and the total time count from it.</summary>
    public long Started { get; init; } = Stopwatch.GetTimestamp();

    /// <summary>Time the adapter spent reading the body, in milliseconds.</summary>
    public double ReadMilliseconds { get; init; }

    /// <summary>Class activation maps wanted (<c>explain=cam</c>): one per image, after the forward pass.</summary>
    public bool Explain { get; set; }

    /// <summary>The class the maps explain, by index or name; null: each image's predicted class.</summary>
    public string? ExplainClass { get; set; }

    /// <summary>The client's key for a traffic split (<c>X-Traffic-Key</c>): the same key, the same version; null: a random draw.</summary>
    public string? TrafficKey { get; set; }
}

/// <summary>What the data plane answered: the version that served, one result per image, and where the time went.</summary>
/// <remarks><see cref="Explanations"/>: one class activation map per image when the call asked for them, else null.</remarks>
public sealed record InferenceOutcome(string Model, int Version, string Device, string Engine, ModelMetadata Metadata, InferenceResult[] Results, bool[] Inverted, StageTimes Times, Explanation[]? Explanations = null);

/// <summary>
/// The protocol-neutral inference data plane (the shape of KServe's <c>dataplane.py</c>): /predict, the KServe v2 REST
/// routes and gRPC are thin adapters that read their wire format into an <see cref="InferenceCall"/> and write the
/// <see cref="InferenceOutcome"/> or the <see cref="InferenceException"/> back. Here, once for every protocol: model
/// acquisition, admission (503 + Retry-After beyond the bounded queue), the client's deadline (work dropped before
/// decoding and before the forward pass), one async, cancellable decode path through the decode memory gate, the
/// batcher, metrics and tracing.
/// </summary>
public sealed class InferenceDataPlane(
    ModelRegistry registry, InferenceEngine engine, AdmissionControl admission, SchedulingDelay scheduling, ServingMetrics metrics, ModelExplainer explainer, TrafficRouter traffic, ModelStore store, IOptions<ServingOptions> options)
{
    private readonly ServingOptions limits = options.Value;

    public ServingOptions Limits => limits;

    /// <summary>
    /// Runs one request. Throws <see cref="InferenceException"/> for anything the client gets an error for, and
    /// <see cref="OperationCanceledException"/> when the client has gone (or the server's request timeout fired).
    /// </summary>
    public async Task<InferenceOutcome> InferAsync(InferenceCall call, CancellationToken aborted)
    {
        using var span = ServingMetrics.Source.StartActivity("nin.infer");
        span?.SetTag("nin.protocol", call.Protocol);
        using var deadline = call.Timeout is { } timeout ? CancellationTokenSource.CreateLinkedTokenSource(aborted) : null;
        if (deadline is not null)
        {
            var left = call.Timeout!.Value - Stopwatch.GetElapsedTime(call.Started);
            if (left <= TimeSpan.Zero)
            {
                throw TimedOut(call, "read");
            }

            deadline.CancelAfter(left);
        }

        var token = deadline?.Token ?? aborted;
        var stage = "model";
        LoadedModel? model = null;
        try
        {
            model = await AcquireAsync(call, token);
            span?.SetTag("nin.model", model.Name);
            span?.SetTag("nin.version", model.Version);
            var count = Count(call, model.Metadata);
            var explainClass = call.Explain ? ExplainedClass(call.ExplainClass, model.Metadata) : null;
            using var ticket = admission.TryAdmit(count, model.ImageMilliseconds, out var retryAfter);
            if (ticket is null)
            {
                metrics.RecordShed(call.Protocol, "queue");
                span?.SetStatus(ActivityStatusCode.Error, "shed");
                throw Overloaded(retryAfter);
            }

            stage = "decode";
            token.ThrowIfCancellationRequested();
            var decodeStarted = Stopwatch.GetTimestamp();
            var (inputs, inverted) = await InputsAsync(call, model.Metadata, token);
            var decodeMs = Stopwatch.GetElapsedTime(decodeStarted).TotalMilliseconds;

            stage = "queue";
            token.ThrowIfCancellationRequested(); // gone or expired while decoding: no pass is spent on it
            var results = await engine.InferAsync(model, inputs, token);
            double queueMs = 0, forwardMs = 0;
            var batch = 0;
            foreach (var r in results)
            {
                queueMs = Math.Max(queueMs, r.QueueMilliseconds);
                forwardMs = Math.Max(forwardMs, r.ForwardMilliseconds);
                batch = Math.Max(batch, r.BatchSize);
            }

            Explanation[]? explanations = null;
            double explainMs = 0;
            if (call.Explain)
            {
                stage = "explain";
                token.ThrowIfCancellationRequested();
                var explainStarted = Stopwatch.GetTimestamp();
                var classes = results.Select(r => explainClass ?? OpenInference.ArgMax(r.Probabilities)).ToArray();
                explanations = await explainer.ExplainAsync(model, inputs, classes, token);
                explainMs = Stopwatch.GetElapsedTime(explainStarted).TotalMilliseconds;
            }

            var times = new StageTimes(call.ReadMilliseconds, decodeMs, queueMs, forwardMs, Stopwatch.GetElapsedTime(call.Started).TotalMilliseconds, batch, explainMs);
            metrics.RecordSuccess(call.Protocol, model, results.Length, times);
            if (call.Version is null)
            {
                traffic.Mirror(model, inputs, results); // a shadow version gets a copy; its answer is only counted
            }

            return new InferenceOutcome(model.Name, model.Version, model.Device, model.Engine, model.Metadata, results, inverted, times, explanations);
        }
        catch (OperationCanceledException) when (deadline?.IsCancellationRequested == true && !aborted.IsCancellationRequested)
        {
            var error = TimedOut(call, stage);
            metrics.RecordFailure(call.Protocol, error.Kind, model, Stopwatch.GetElapsedTime(call.Started).TotalMilliseconds);
            span?.SetStatus(ActivityStatusCode.Error, "deadline exceeded");
            throw error;
        }
        catch (InferenceException ex)
        {
            metrics.RecordFailure(call.Protocol, ex.Kind, model, Stopwatch.GetElapsedTime(call.Started).TotalMilliseconds);
            throw;
        }
        finally
        {
            model?.Release();
        }
    }

    /// <summary>
    /// Refuses a request at once (before its body is read) when the admission queue is already past its bound: the
    /// adapters call this first, so under overload a 503 costs no upload, parsing or decoding.
    /// </summary>
    public void ShedIfFull(string protocol)
    {
        if (admission.IsFull(out var retryAfter))
        {
            metrics.RecordShed(protocol, "queue");
            throw Overloaded(retryAfter);
        }

        // The cores, not the passes, are what requests queue for: work waits for a thread longer than allowed.
        if (limits.MaxSchedulingDelayMilliseconds > 0 && scheduling.Current is var delay && delay > limits.MaxSchedulingDelayMilliseconds)
        {
            metrics.RecordShed(protocol, "saturated");
            throw new InferenceException(InferenceErrorKind.Overloaded, "Overloaded.",
                $"The service is saturated: work waits {delay / 1000:F1} s for a thread (more than Serving:MaxSchedulingDelayMilliseconds, {limits.MaxSchedulingDelayMilliseconds:F0} ms); retry after the Retry-After seconds.",
                TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(delay / 1000))));
        }
    }

    private InferenceException Overloaded(TimeSpan retryAfter) =>
        new(InferenceErrorKind.Overloaded, "Overloaded.",
            $"The inference queue is full (about {admission.PendingMilliseconds / Math.Max(1, engine.WorkerCount) / 1000:F1} s of work ahead); retry after the Retry-After seconds.", retryAfter);

    /// <summary>
    /// Whether a version (null: the active one) is loaded and can serve here: returns when it is (loading it if it is
    /// not), throws the refusal otherwise (404 unknown, 503 with the cause when it cannot be loaded).
    /// </summary>
    public async Task ReadyAsync(string? model, int? version, bool keyed, CancellationToken cancellationToken)
    {
        var loaded = await AcquireAsync(new InferenceCall { Protocol = "ready", Model = model, Version = version, Keyed = keyed }, cancellationToken);
        loaded.Release();
    }

    /// <summary>The deadline passed in <paramref name="stage"/> (<c>read</c>, <c>model</c>, <c>decode</c>, <c>queue</c>): counted, and the 504.</summary>
    private InferenceException TimedOut(InferenceCall call, string stage)
    {
        metrics.RecordTimeout(call.Protocol, stage);
        return InferenceErrors.DeadlineExceeded(stage switch
        {
            "read" => "before the request was read",
            "model" => "while its model was loading",
            "decode" => "while its images were decoded",
            "explain" => "while its class activation maps were computed",
            _ => "before its forward pass ended",
        });
    }

    /// <summary>The served version for the call, referenced; every refusal as an <see cref="InferenceException"/>.</summary>
    private async Task<LoadedModel> AcquireAsync(InferenceCall call, CancellationToken token)
    {
        LoadedModel? model;
        try
        {
            // A request that names no version follows its model's traffic split, if it has one; a routed version that has
            // gone meanwhile (deleted) leaves the request to the model's own active or newest version.
            model = null;
            if (call.Version is null && (call.Model ?? store.Active?.Name) is { } routedName && traffic.Route(routedName, call.TrafficKey) is { } routed)
            {
                model = await registry.AcquireAsync(routedName, routed, token, boundedLoads: false);
            }

            model ??= await registry.AcquireAsync(call.Model, call.Version, token, boundedLoads: !call.Keyed);
        }
        catch (VersionLoadLimitException ex)
        {
            throw new InferenceException(InferenceErrorKind.TooManyLoads, "Too many version loads.", ex.Message, ex.RetryAfter);
        }
        catch (ModelLoadException ex)
        {
            var retry = registry.FailureOf(ex.Name, ex.Version)?.RetryAt - DateTimeOffset.UtcNow;
            throw new InferenceException(InferenceErrorKind.Unavailable, "The model cannot be loaded.",
                $"Model '{ex.Name}' version {ex.Version} cannot be loaded on this replica: {ex.Cause}", retry is { } r && r > TimeSpan.Zero ? r : TimeSpan.FromSeconds(1));
        }

        return model ?? throw (call.Model is null ? InferenceErrors.NoActiveModel() : InferenceErrors.UnknownModel(call.Model, call.Version));
    }

    /// <summary>How many images the call holds (its tensor's N, checked against the model's input shape).</summary>
    private int Count(InferenceCall call, ModelMetadata meta)
    {
        if (call.Images is { } images)
        {
            return images.Count;
        }

        var tensor = call.Tensor ?? throw InferenceErrors.BadRequest("The request holds no input.");
        int c = meta.InputChannels, s = meta.ImageSize;
        var shape = tensor.Shape;
        if (shape.Length != 4 || shape[1] != c || shape[2] != s || shape[3] != s || shape[0] < 1)
        {
            throw InferenceErrors.BadRequest($"FP32 input must have shape [N, {c}, {s}, {s}]; got [{string.Join(", ", shape)}].");
        }

        if (shape[0] > limits.MaxImagesPerRequest)
        {
            throw InferenceErrors.TooLarge("Too many images.", $"At most {limits.MaxImagesPerRequest} images per request; got {shape[0]}.");
        }

        var per = c * s * s;
        if (tensor.Values.Length != shape[0] * per)
        {
            throw InferenceErrors.BadRequest($"FP32 input holds {tensor.Values.Length:N0} values; shape [{string.Join(", ", shape)}] needs {shape[0] * per:N0}.");
        }

        return (int)shape[0];
    }

    /// <summary>The engine's inputs: images decoded one after another through the decode gate, or slices of the tensor.</summary>
    private async Task<(InferenceInput[] Inputs, bool[] Inverted)> InputsAsync(InferenceCall call, ModelMetadata meta, CancellationToken token)
    {
        if (call.Images is not { } images)
        {
            var tensor = call.Tensor!;
            var per = meta.InputChannels * meta.ImageSize * meta.ImageSize;
            var n = (int)tensor.Shape[0];
            var slices = new InferenceInput[n];
            for (var i = 0; i < n; i++)
            {
                slices[i] = new InferenceInput(null, tensor.Values.Slice(i * per, per));
            }

            return (slices, new bool[n]);
        }

        using var span = images.Count > 0 ? ServingMetrics.Source.StartActivity("nin.decode") : null;
        var inputs = new InferenceInput[images.Count];
        var inverted = new bool[images.Count];
        var pre = meta.Preprocessing;
        for (var i = 0; i < images.Count; i++)
        {
            token.ThrowIfCancellationRequested(); // gone or past its deadline: decode no more
            if (images[i].Data.Length > limits.MaxImageBytes)
            {
                throw InferenceErrors.TooLarge("Image too large.", $"Image {Name(images[i], i)} is {images[i].Data.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted per image.");
            }

            try
            {
                var decoded = await ImageDecoder.DecodeAsync(images[i].Data, meta.InputChannels, pre.NativeWidth, pre.NativeHeight,
                    pre.Foreground == "light-on-dark", call.Invert, limits.MaxImagePixels, token);
                inputs[i] = new InferenceInput(decoded.Pixels, null);
                inverted[i] = decoded.Inverted;
            }
            catch (ImageDecodeException ex)
            {
                throw InferenceErrors.FromDecode(ex, images[i].Name, i);
            }
        }

        return (inputs, inverted);
    }

    /// <summary>The class asked for by index or name (case-insensitive); a 400 naming the classes otherwise.</summary>
    internal static int? ExplainedClass(string? asked, ModelMetadata meta)
    {
        var names = meta.ClassNames;
        if (string.IsNullOrWhiteSpace(asked))
        {
            return null;
        }

        if (int.TryParse(asked, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index) && index < names.Count)
        {
            return index;
        }

        var byName = names.Select((n, i) => (n, i)).FirstOrDefault(p => string.Equals(p.n, asked.Trim(), StringComparison.OrdinalIgnoreCase));
        return byName.n is not null
            ? byName.i
            : throw InferenceErrors.BadRequest($"explainClass '{asked}' is neither a class index (0–{names.Count - 1}) nor a class of this model ({string.Join(", ", names)}).");
    }

    private static string Name(EncodedImage image, int index) => image.Name is { } f ? $"'{f}'" : $"#{index + 1}";
}
