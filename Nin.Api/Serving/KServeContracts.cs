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
/// An input tensor. <c>data</c> is a flat array (FP32 numbers, or BYTES as base64 strings of encoded images), or absent
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
