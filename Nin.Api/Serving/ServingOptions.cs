using Nin.Model.Onnx;

namespace Nin.Api.Serving;

/// <summary>Inference limits and the dynamic batcher. Bound from the <c>Serving</c> section.</summary>
public sealed class ServingOptions
{
    public const string SectionName = "Serving";

    /// <summary>
    /// Which engine runs forward passes: <c>auto</c> (default: ONNX Runtime on a CPU, TorchSharp on CUDA unless ONNX
    /// Runtime's CUDA provider is installed), <c>torch</c> or <c>onnxruntime</c>. Training is always TorchSharp.
    /// </summary>
    public string Engine { get; set; } = ServingEngines.Auto;

    /// <summary>
    /// Number format of forward passes: <c>fp32</c> (default); <c>fp16</c> or <c>bf16</c> with the TorchSharp engine (for
    /// CUDA, where tensor cores run them at several times fp32's rate; <c>auto</c> then picks TorchSharp); <c>int8</c> with
    /// ONNX Runtime on the CPU: each version's calibrated int8 model (docs/int8.md), when it has one no more than
    /// <see cref="Int8MarginPoints"/> less accurate than fp32, else fp32; <c>auto</c>: int8 like that where the CPU has
    /// AVX-512 VNNI, AVX-VNNI or ARM dot product, fp32 elsewhere. Probabilities are computed in fp32 either way.
    /// </summary>
    public string Precision { get; set; } = ServingPrecision.Fp32;

    /// <summary>
    /// Precision for single models or versions, overriding <see cref="Precision"/> under ONNX Runtime: keys
    /// <c>{name}</c> (all its versions) or <c>{name}/{version}</c>, values <c>fp32</c>, <c>int8</c> or <c>auto</c>
    /// (e.g. <c>Serving:VersionPrecision:fashion-mnist/3=fp32</c>).
    /// </summary>
    public Dictionary<string, string> VersionPrecision { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Training images that calibrate a new version's int8 model (a random sample of its training split).</summary>
    public int Int8CalibrationImages { get; set; } = 256;

    /// <summary>
    /// Most accuracy, in percentage points of the version's test split, its int8 model may lose against fp32 and still
    /// serve; beyond it the version serves in fp32 and carries a warning. Applied when a version loads, to the figures
    /// measured when it was quantized.
    /// </summary>
    public double Int8MarginPoints { get; set; } = 0.5;

    /// <summary>How new versions are quantized (calibration sample size and margin).</summary>
    public Int8Options Int8() => new() { CalibrationImages = Int8CalibrationImages, MarginPoints = Int8MarginPoints };

    /// <summary>
    /// Whether ONNX Runtime's intra-op threads spin between the operators of a pass instead of sleeping. When on, they
    /// stop as soon as the pass ends (<c>session.force_spinning_stop</c>): spinning that went on after each pass (ONNX
    /// Runtime's own default) made a lone 96 px pass 4× slower on shared cores. Off by default: on the 2-core machine
    /// pass-only spinning gave a lone request's p50 anywhere from 12 % worse to 30 % better from run to run, and its p99
    /// twice as high in every run (docs/benchmarks.md). Dedicated cores may gain from it.
    /// </summary>
    public bool OnnxSpinning { get; set; }

    /// <summary>
    /// Most images one forward pass takes (Triton's max_batch_size). 0 (default): 4 on a CPU, where a single-threaded
    /// pass over more images than fit the cache gets slower per image (<c>./nin bench forward</c>), 64 on a GPU.
    /// </summary>
    public int MaxBatchSize { get; set; }

    /// <summary>
    /// How long the batcher waits for more requests after the first (Triton's max_queue_delay). 0 batches
    /// only what queued while the previous pass ran: no added latency for a lone client.
    /// </summary>
    public double MaxBatchDelayMilliseconds { get; set; }

    /// <summary>
    /// Inference threads, each running its own forward passes. 0 (default): one per Torch thread on a CPU, 1 on a
    /// GPU. <c>./nin bench forward</c> shows what suits a machine.
    /// </summary>
    public int Workers { get; set; }

    /// <summary>
    /// Torch threads per forward pass. 0 (default): a pass running alone gets all of Torch's threads; while
    /// several run, each other pass takes one from it.
    /// </summary>
    public int ThreadsPerPass { get; set; }

    /// <summary>
    /// Whether a one-image request that finds every inference worker idle and nothing queued runs its pass on its own
    /// thread instead of handing it to worker 0 and waiting for the answer (ONNX Runtime only, whose threads are its
    /// own; no batching delay). Saves two thread wake-ups per lone request; under load requests queue as before.
    /// </summary>
    public bool IdlePassesInline { get; set; } = true;

    /// <summary>Largest accepted encoded image.</summary>
    public long MaxImageBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Most images in one request.</summary>
    public int MaxImagesPerRequest { get; set; } = 64;

    /// <summary>Largest accepted request body.</summary>
    public long MaxRequestBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Most decoded pixels per image, checked from the header before decoding.</summary>
    public long MaxImagePixels { get; set; } = 40_000_000;

    /// <summary>Non-active versions kept loaded for <c>?model=&amp;version=</c> requests.</summary>
    public int CachedVersions { get; set; } = 2;

    /// <summary>
    /// Loads of non-active versions per minute, process-wide, for callers without an API key (each load reads a
    /// checkpoint and may evict another cached version); 429 beyond it. Keyed callers are not counted. 0: no limit.
    /// </summary>
    public int VersionLoadsPerMinute { get; set; } = 10;

    /// <summary>
    /// Admission bound: how much forward work (estimated from each version's measured time per image) may wait ahead
    /// of an admitted request, in milliseconds. A request that would wait longer is refused at once with 503 and
    /// <c>Retry-After</c> instead of queueing towards the request timeout. 0: no bound by time.
    /// </summary>
    public double MaxQueueMilliseconds { get; set; } = 2000;

    /// <summary>
    /// Refuse inference at once (503 + <c>Retry-After</c>) while work waits longer than this for a thread-pool thread,
    /// in milliseconds: the cores' HTTP work, not the forward passes, is then what requests queue for, which the bound
    /// above cannot see. Measured by a probe every 100 ms (the largest delay of the last second; /metrics shows it
    /// always). 0 (default): never; on 2 CPU cores floods wait in the admission queue, not the pool (docs/serving.md).
    /// </summary>
    public double MaxSchedulingDelayMilliseconds { get; set; }

    /// <summary>Admission bound in images admitted and not yet answered (decoding, queued or in a pass). 0 (default): no bound by count.</summary>
    public int MaxQueuedImages { get; set; }

    /// <summary>
    /// Open connections above which a newly accepted connection's requests are answered at once with 503,
    /// <c>Retry-After</c> and <c>Connection: close</c> (health probes and <c>/metrics</c> excepted), so a flood is refused
    /// before Kestrel's connection bound has to reset connections unread. Unset: seven eighths of that bound
    /// (<c>Kestrel:Limits:MaxConcurrentConnections</c>); 0: never.
    /// </summary>
    public long? ShedConnectionsAbove { get; set; }

    /// <summary>
    /// Longest wait between attempts to load an active version that failed to load on this replica (the waits double
    /// from 1 s up to this); meanwhile the version served before keeps serving and readiness says why.
    /// </summary>
    public double LoadRetryMaxSeconds { get; set; } = 60;

    /// <summary>
    /// How much lower than the process the inference workers' scheduling priority is (Linux nice, 0–19): when forward
    /// passes fill every core, request threads (reading, refusing at admission, answering) still get a core at once.
    /// 0: the same priority.
    /// </summary>
    public int WorkerNice { get; set; } = 5;

    /// <summary>
    /// Port of the Open Inference Protocol over gRPC (<c>inference.GRPCInferenceService</c>), cleartext HTTP/2 only,
    /// on the same host(s) as the HTTP endpoints. 0 (default): no gRPC port. gRPC also answers over TLS endpoints,
    /// where HTTP/2 is negotiated.
    /// </summary>
    public int GrpcPort { get; set; }
}
