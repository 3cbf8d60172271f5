using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using Nin.Model.Imaging;
using Nin.Model.Network;

namespace Nin.Api.Serving;

/// <summary>KServe v2 / Open Inference Protocol error body.</summary>
public sealed record V2Error(string Error);

public sealed record V2ServerLive(bool Live);

public sealed record V2ServerReady(bool Ready);

public sealed record V2TensorMetadata(string Name, string Datatype, long[] Shape);

/// <summary>Model metadata as the Open Inference Protocol describes it.</summary>
public sealed record V2ModelMetadata(string Name, IReadOnlyList<string> Versions, string Platform, IReadOnlyList<V2TensorMetadata> Inputs, IReadOnlyList<V2TensorMetadata> Outputs);

/// <summary>An input or output tensor. <c>data</c> is a flat array (FP32 numbers, or BYTES as base64 strings of encoded images).</summary>
public sealed record V2Tensor
{
    public required string Name { get; init; }

    public long[] Shape { get; init; } = [];

    public required string Datatype { get; init; }

    public System.Text.Json.JsonElement Data { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, object>? Parameters { get; init; }
}

public sealed record V2InferRequest
{
    public string? Id { get; init; }

    public IReadOnlyList<V2Tensor> Inputs { get; init; } = [];
}

public sealed record V2OutputTensor(string Name, long[] Shape, string Datatype, object Data);

public sealed record V2InferResponse(
    [property: JsonPropertyName("model_name")] string ModelName,
    [property: JsonPropertyName("model_version")] string ModelVersion,
    string? Id,
    IReadOnlyList<V2OutputTensor> Outputs);

/// <summary>
/// The KServe v2 / Open Inference Protocol REST surface, so standard clients (KServe, Triton's
/// client libraries) can call the NiN. Model names are store names; the served version is the
/// active one if it is that model, else the newest.
/// </summary>
public static class KServeApi
{
    public const string InputName = "input";
    public const string ImagesInputName = "images";

    /// <summary>Largest magnitude of an FP32 input value: far beyond [0, 1], yet far from what overflows the network.</summary>
    public const float MaxInputMagnitude = 1e6f;

    public static IEndpointRouteBuilder MapKServeApi(this IEndpointRouteBuilder app)
    {
        var v2 = app.MapGroup("/v2").WithTags("KServe v2");
        v2.MapGet("/health/live", () => TypedResults.Ok(new V2ServerLive(true)))
            .WithName("V2ServerLive").WithSummary("Server liveness (Open Inference Protocol)")
            .WithDescription("Always `{ \"live\": true }` while the process runs.");
        v2.MapGet("/health/ready", ServerReady)
            .WithName("V2ServerReady").WithSummary("Server readiness: 200 when a model is loaded for serving")
            .WithDescription("200 `{ \"ready\": true }` when the active model is loaded; 503 with `{ \"error\" }` when no model is active or it cannot be loaded.")
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
        v2.MapGet("/models/{name}", ModelMetadata)
            .WithName("V2ModelMetadata").WithSummary("Model metadata: inputs, outputs, versions")
            .WithDescription("The model's inputs (`input` FP32 [-1, C, S, S] and `images` BYTES [-1]), outputs (`probabilities`, `label`) and stored versions. 404 for an unknown model.")
            .Produces<V2Error>(StatusCodes.Status404NotFound);
        v2.MapGet("/models/{name}/ready", ModelReady)
            .WithName("V2ModelReady").WithSummary("Model readiness")
            .WithDescription("200 when the model (its active version if it is the active model, else its newest) can be loaded; 404 unknown model; 503 it cannot be loaded; 401 a model other than the active one without a key (when API keys are configured); 429 too many loads of non-active versions without a key.")
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
        v2.MapPost("/models/{name}/infer", Infer)
            .WithName("V2ModelInfer")
            .WithSummary("Run inference (Open Inference Protocol)")
            .WithDescription("""
                Inputs: either `input`, an FP32 tensor of shape [N, C, S, S] already preprocessed (pixels scaled to [0,1] at the
                model's image size S), or `images`, a BYTES tensor of shape [N] whose elements are base64-encoded image files
                (decoded and preprocessed as /predict does). Outputs: `probabilities` (FP32 [N, classes]) and `label` (BYTES [N]).
                FP32 values must be finite and within ±1e6. Errors are `{ "error": "..." }`: 400 a malformed or null input, values out
                of range or results that are not finite; 401 a model other than the active one without a key (when API keys are
                configured); 429 rate limit, or too many loads of non-active versions without a key.
                """)
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable)
            .RequireRateLimiting(SecurityExtensions.PredictPolicy);
        return app;
    }

    public static async Task<Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>>> ServerReady(ModelRegistry registry, ModelStore store, CancellationToken cancellationToken)
    {
        var model = await registry.AcquireAsync(null, null, cancellationToken);
        if (model is null)
        {
            return TypedResults.Json(new V2Error(store.Active is null ? "No model is active." : "The active model could not be loaded."), statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        model.Release();
        return TypedResults.Ok(new V2ServerReady(true));
    }

    public static Results<Ok<V2ModelMetadata>, JsonHttpResult<V2Error>> ModelMetadata(string name, ModelStore store)
    {
        var info = Resolve(name, store);
        if (info is null)
        {
            return NotFound(name);
        }

        var m = info.Metadata;
        var versions = store.List().Where(v => v.Name == name).Select(v => v.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return TypedResults.Ok(new V2ModelMetadata(
            name,
            versions,
            "torchsharp_" + (NetworkArchitectures.Find(m.Architecture)?.Name ?? m.Architecture),
            [new V2TensorMetadata(InputName, "FP32", [-1, m.InputChannels, m.ImageSize, m.ImageSize]), new V2TensorMetadata(ImagesInputName, "BYTES", [-1])],
            [new V2TensorMetadata("probabilities", "FP32", [-1, m.ClassNames.Count]), new V2TensorMetadata("label", "BYTES", [-1])]));
    }

    public static async Task<Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>>> ModelReady(string name, HttpContext http, ModelStore store, ModelRegistry registry, VersionAccess access, CancellationToken cancellationToken)
    {
        var info = Resolve(name, store);
        if (info is null)
        {
            return NotFound(name);
        }

        var (model, refused) = await AcquireAsync(http, name, info.Version, registry, access, cancellationToken);
        if (refused is not null)
        {
            return refused;
        }

        if (model is null)
        {
            return TypedResults.Json(new V2Error($"Model '{name}' could not be loaded."), statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        model.Release();
        return TypedResults.Ok(new V2ServerReady(true));
    }

    public static async Task<Results<Ok<V2InferResponse>, JsonHttpResult<V2Error>>> Infer(
        string name, HttpRequest http, ModelStore store, ModelRegistry registry, InferenceEngine engine, IOptions<ServingOptions> options, VersionAccess access, CancellationToken cancellationToken)
    {
        var info = Resolve(name, store);
        if (info is null)
        {
            return NotFound(name);
        }

        V2InferRequest? request;
        try
        {
            request = await http.ReadFromJsonAsync<V2InferRequest>(System.Text.Json.JsonSerializerOptions.Web, cancellationToken);
        }
        catch (System.Text.Json.JsonException ex)
        {
            // Where the JSON went wrong, in the client's own document; never the exception's text.
            return BadRequest(ex.Path is { Length: > 0 } at
                ? $"The body is not an inference request: the value at {at} (line {ex.LineNumber + 1}) is missing, malformed or of the wrong type."
                : "The body is not an inference request: it is not valid JSON of that shape.");
        }
        catch (Exception ex) when (ex is InvalidOperationException or BadHttpRequestException)
        {
            return BadRequest("The body is not an inference request: send JSON with Content-Type application/json.");
        }

        if (request is null || request.Inputs is null || request.Inputs.Count != 1)
        {
            return BadRequest($"Send exactly one input: '{InputName}' (FP32 [N, C, S, S]) or '{ImagesInputName}' (BYTES [N]).");
        }

        if (request.Inputs[0] is not { } input || input.Shape is null || input.Datatype is null || input.Name is null)
        {
            return BadRequest("The input must be an object with 'name', 'shape' (an array of integers), 'datatype' and 'data'; null is not an input.");
        }

        var (model, refused) = await AcquireAsync(http.HttpContext, name, info.Version, registry, access, cancellationToken);
        if (refused is not null)
        {
            return refused;
        }

        if (model is null)
        {
            return TypedResults.Json(new V2Error($"Model '{name}' could not be loaded."), statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        try
        {
            var (inputs, error) = ReadInputs(input, model.Metadata, options.Value);
            if (error is not null)
            {
                return BadRequest(error);
            }

            var probabilities = (await engine.InferAsync(model, inputs!, cancellationToken)).Select(r => r.Probabilities).ToArray();
            if (Array.FindIndex(probabilities, p => !Array.TrueForAll(p, float.IsFinite)) is var bad and >= 0)
            {
                return BadRequest($"Input {bad} gives non-finite probabilities (NaN or infinity): the values overflow the network. Send pixels scaled to [0, 1], as the model was trained on.");
            }

            var classes = model.Metadata.ClassNames.Count;
            return TypedResults.Ok(new V2InferResponse(
                name,
                model.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
                request.Id,
                [
                    new V2OutputTensor("probabilities", [probabilities.Length, classes], "FP32", probabilities.SelectMany(p => p).ToArray()),
                    new V2OutputTensor("label", [probabilities.Length], "BYTES", probabilities.Select(p => model.Metadata.ClassNames[Array.IndexOf(p, p.Max())]).ToArray()),
                ]));
        }
        finally
        {
            model.Release();
        }
    }

    private static (InferenceInput[]? Inputs, string? Error) ReadInputs(V2Tensor tensor, ModelMetadata meta, ServingOptions limits)
    {
        var data = tensor.Data;
        if (data.ValueKind != System.Text.Json.JsonValueKind.Array)
        {
            return (null, "Input 'data' must be a flat array.");
        }

        if (tensor.Datatype == "FP32")
        {
            int c = meta.InputChannels, s = meta.ImageSize;
            if (tensor.Shape.Length != 4 || tensor.Shape[1] != c || tensor.Shape[2] != s || tensor.Shape[3] != s || tensor.Shape[0] < 1)
            {
                return (null, $"FP32 input must have shape [N, {c}, {s}, {s}]; got [{string.Join(", ", tensor.Shape)}].");
            }

            var n = tensor.Shape[0];
            if (n > limits.MaxImagesPerRequest)
            {
                return (null, $"At most {limits.MaxImagesPerRequest} images per request; got {n}.");
            }

            var per = c * s * s;
            if (data.GetArrayLength() != n * per)
            {
                return (null, $"FP32 input holds {data.GetArrayLength()} values; shape [{string.Join(", ", tensor.Shape)}] needs {n * per}.");
            }

            var values = new float[n * per];
            var i = 0;
            foreach (var v in data.EnumerateArray())
            {
                if (v.ValueKind != System.Text.Json.JsonValueKind.Number || !v.TryGetSingle(out var f) || !float.IsFinite(f))
                {
                    return (null, $"FP32 input element {i} is not a finite number.");
                }

                if (Math.Abs(f) > MaxInputMagnitude)
                {
                    return (null, $"FP32 input element {i} is {f:G3}; values must lie within ±{MaxInputMagnitude:G0} (the model takes pixels scaled to [0, 1]), or the network overflows.");
                }

                values[i++] = f;
            }

            return (Enumerable.Range(0, (int)n).Select(k => new InferenceInput(null, values.AsSpan(k * per, per).ToArray())).ToArray(), null);
        }

        if (tensor.Datatype == "BYTES")
        {
            var count = data.GetArrayLength();
            if (count < 1 || count > limits.MaxImagesPerRequest)
            {
                return (null, $"BYTES input must hold 1 to {limits.MaxImagesPerRequest} images; got {count}.");
            }

            var inputs = new List<InferenceInput>();
            foreach (var element in data.EnumerateArray())
            {
                byte[] bytes;
                try
                {
                    bytes = element.ValueKind == System.Text.Json.JsonValueKind.String ? Convert.FromBase64String(element.GetString()!) : throw new FormatException();
                }
                catch (FormatException)
                {
                    return (null, $"BYTES element {inputs.Count} is not a base64 string.");
                }

                if (bytes.Length > limits.MaxImageBytes)
                {
                    return (null, $"Image {inputs.Count} is {bytes.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted.");
                }

                try
                {
                    var decoded = ImageDecoder.Decode(bytes, meta.InputChannels, meta.Preprocessing.NativeWidth, meta.Preprocessing.NativeHeight,
                        meta.Preprocessing.Foreground == "light-on-dark", InvertMode.Auto, limits.MaxImagePixels);
                    inputs.Add(new InferenceInput(decoded.Pixels, null));
                }
                catch (ImageDecodeException ex)
                {
                    return (null, $"Image {inputs.Count}: {ex.Message}");
                }
            }

            return (inputs.ToArray(), null);
        }

        return (null, $"Unsupported datatype '{tensor.Datatype}': use FP32 or BYTES.");
    }

    /// <summary>The served model, or the refusal for a caller without a key: 401 for a non-active version when keys are on, 429 beyond the load bound.</summary>
    private static async Task<(LoadedModel? Model, JsonHttpResult<V2Error>? Refused)> AcquireAsync(
        HttpContext http, string name, int version, ModelRegistry registry, VersionAccess access, CancellationToken cancellationToken)
    {
        if (!access.MayServe(http, name, version))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return (null, TypedResults.Json(new V2Error($"{VersionAccess.DeniedTitle} {VersionAccess.DeniedDetail}"), statusCode: StatusCodes.Status401Unauthorized));
        }

        try
        {
            return (await registry.AcquireAsync(name, version, cancellationToken, boundedLoads: !VersionAccess.IsKeyed(http)), null);
        }
        catch (VersionLoadLimitException ex)
        {
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(ex.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return (null, TypedResults.Json(new V2Error(ex.Message), statusCode: StatusCodes.Status429TooManyRequests));
        }
    }

    private static ModelVersionInfo? Resolve(string name, ModelStore store) =>
        store.Active is { } a && a.Name == name ? store.Find(name, a.Version) : store.Latest(name);

    private static JsonHttpResult<V2Error> NotFound(string name) =>
        TypedResults.Json(new V2Error($"Unknown model '{name}'."), statusCode: StatusCodes.Status404NotFound);

    private static JsonHttpResult<V2Error> BadRequest(string error) =>
        TypedResults.Json(new V2Error(error), statusCode: StatusCodes.Status400BadRequest);
}
