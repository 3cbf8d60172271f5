using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nin.Api.Serving;

/// <summary>KServe v2 / Open Inference Protocol error body.</summary>
public sealed record V2Error(string Error);

/// <summary>Server metadata: name, version and the protocol extensions supported.</summary>
public sealed record V2ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

public sealed record V2ServerLive(bool Live);

public sealed record V2ServerReady(bool Ready);

public sealed record V2TensorMetadata(string Name, string Datatype, long[] Shape);

/// <summary>Model metadata as the Open Inference Protocol describes it.</summary>
public sealed record V2ModelMetadata(string Name, IReadOnlyList<string> Versions, string Platform, IReadOnlyList<V2TensorMetadata> Inputs, IReadOnlyList<V2TensorMetadata> Outputs);

/// <summary>
/// An input tensor. <c>data</c> is an array in row-major order, flat or nested in the tensor's dimensions (FP32 numbers, or
/// BYTES as base64 strings of encoded images), or absent
/// when <c>parameters.binary_data_size</c> says the tensor's bytes follow the JSON (binary tensor data extension).
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)] // a field the protocol lacks is a 400 naming it
public sealed record V2Tensor
{
    public required string Name { get; init; }

    public long[] Shape { get; init; } = [];

    public required string Datatype { get; init; }

    public JsonElement Data { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, JsonElement>? Parameters { get; init; }
}

/// <summary>A requested output; <c>parameters.binary_data</c> asks for it as binary data.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)] // a field the protocol lacks is a 400 naming it
public sealed record V2RequestOutput
{
    public required string Name { get; init; }

    public Dictionary<string, JsonElement>? Parameters { get; init; }
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)] // a field the protocol lacks is a 400 naming it
public sealed record V2InferRequest
{
    public string? Id { get; init; }

    /// <summary><c>binary_data_output: true</c> returns every output as binary data unless an output says otherwise.</summary>
    public Dictionary<string, JsonElement>? Parameters { get; init; }

    public IReadOnlyList<V2Tensor> Inputs { get; init; } = [];

    /// <summary>The outputs to return, in order; all of them when absent.</summary>
    public IReadOnlyList<V2RequestOutput>? Outputs { get; init; }
}

/// <summary>An output tensor: JSON <c>data</c>, or <c>parameters.binary_data_size</c> when its bytes follow the JSON.</summary>
public sealed record V2OutputTensor(
    string Name,
    long[] Shape,
    string Datatype,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Data,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Dictionary<string, object>? Parameters = null);

public sealed record V2InferResponse(
    [property: JsonPropertyName("model_name")] string ModelName,
    [property: JsonPropertyName("model_version")] string ModelVersion,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    IReadOnlyList<V2OutputTensor> Outputs);

/// <summary>One input or output of a model's configuration, in Triton's terms (<c>dims</c> without the batch dimension).</summary>
public sealed record V2ConfigTensor(
    string Name,
    [property: JsonPropertyName("data_type")] string DataType,
    [property: JsonPropertyName("format")] string Format,
    long[] Dims,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("label_filename")] string? LabelFilename = null);

/// <summary>The dynamic batcher's settings and the admission queue, in Triton's terms.</summary>
public sealed record V2DynamicBatching(
    [property: JsonPropertyName("max_queue_delay_microseconds")] long MaxQueueDelayMicroseconds,
    [property: JsonPropertyName("default_queue_policy")] V2QueuePolicy DefaultQueuePolicy);

/// <summary>Beyond <c>max_queue_size</c> images (0: bounded by time only) or the queue's time bound, requests are refused (503 + Retry-After).</summary>
public sealed record V2QueuePolicy(
    [property: JsonPropertyName("timeout_action")] string TimeoutAction,
    [property: JsonPropertyName("max_queue_size")] int MaxQueueSize,
    [property: JsonPropertyName("max_queue_milliseconds")] double MaxQueueMilliseconds,
    [property: JsonPropertyName("allow_timeout_override")] bool AllowTimeoutOverride);

/// <summary>What the FP32 input expects: how an image becomes it (the model's own preprocessing).</summary>
public sealed record V2Preprocessing(
    int Channels,
    [property: JsonPropertyName("native_width")] int NativeWidth,
    [property: JsonPropertyName("native_height")] int NativeHeight,
    [property: JsonPropertyName("image_size")] int ImageSize,
    string Scale,
    string Resize,
    string Foreground,
    string Layout);

/// <summary>A model's configuration (<c>GET /v2/models/{name}/config</c>), shaped like Triton's model config.</summary>
public sealed record V2ModelConfig(
    string Name,
    string Version,
    string Platform,
    string Backend,
    [property: JsonPropertyName("max_batch_size")] int MaxBatchSize,
    IReadOnlyList<V2ConfigTensor> Input,
    IReadOnlyList<V2ConfigTensor> Output,
    [property: JsonPropertyName("dynamic_batching")] V2DynamicBatching DynamicBatching,
    V2Preprocessing Preprocessing,
    IReadOnlyList<string> Labels);

/// <summary>A count and its cumulative nanoseconds (Triton's statistic duration).</summary>
public sealed record V2StatDuration(long Count, long Ns);

public sealed record V2InferStats(
    V2StatDuration Success,
    V2StatDuration Fail,
    V2StatDuration Queue,
    [property: JsonPropertyName("compute_input")] V2StatDuration ComputeInput,
    [property: JsonPropertyName("compute_infer")] V2StatDuration ComputeInfer,
    [property: JsonPropertyName("compute_output")] V2StatDuration ComputeOutput);

public sealed record V2BatchStats(
    [property: JsonPropertyName("batch_size")] int BatchSize,
    [property: JsonPropertyName("compute_infer")] V2StatDuration ComputeInfer);

/// <summary>One version's statistics since this process started, in Triton's shape.</summary>
public sealed record V2ModelStats(
    string Name,
    string Version,
    [property: JsonPropertyName("last_inference")] long LastInference,
    [property: JsonPropertyName("inference_count")] long InferenceCount,
    [property: JsonPropertyName("execution_count")] long ExecutionCount,
    [property: JsonPropertyName("inference_stats")] V2InferStats InferenceStats,
    [property: JsonPropertyName("batch_stats")] IReadOnlyList<V2BatchStats> BatchStats);

public sealed record V2ModelStatsResponse([property: JsonPropertyName("model_stats")] IReadOnlyList<V2ModelStats> ModelStats);

/// <summary>One stored version in the repository index: <c>READY</c> when loaded on this replica, else <c>UNAVAILABLE</c> with the reason.</summary>
public sealed record V2RepositoryModel(
    string Name,
    string Version,
    string State,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Reason);

/// <summary>The optional body of <c>POST /v2/repository/index</c>: <c>ready: true</c> lists only loaded versions.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)] // a field the protocol lacks is a 400 naming it
public sealed record V2RepositoryIndexRequest(bool? Ready);

/// <summary>The optional body of a model repository load or unload request (Triton's extension).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record V2RepositoryControlRequest(Dictionary<string, JsonElement>? Parameters);

/// <summary>A successful load or unload: an empty object, as Triton answers.</summary>
public sealed record V2RepositoryControlResponse;
