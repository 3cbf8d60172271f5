using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using Nin.Model.Imaging;
using Nin.Model.Network;

namespace Nin.Api.Serving;

/// <summary>
/// The KServe v2 / Open Inference Protocol REST surface, so standard clients (KServe, Triton's
/// client libraries) can call the NiN. Model names are store names; without a version in the route the
/// served version is the active one if it is that model, else the newest.
/// </summary>
public static class KServeApi
{
    public const string InputName = "input";
    public const string ImagesInputName = "images";
    public const string ProbabilitiesOutput = "probabilities";
    public const string LabelOutput = "label";
    public const string ServerName = "nin";

    /// <summary>Largest magnitude of an FP32 input value: far beyond [0, 1], yet far from what overflows the network.</summary>
    public const float MaxInputMagnitude = 1e6f;

    public static IEndpointRouteBuilder MapKServeApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v2", ServerMetadata).WithTags("KServe v2")
            .WithName("V2ServerMetadata").WithSummary("Server metadata (Open Inference Protocol)")
            .WithDescription("The server's name, version and supported extensions (`binary_tensor_data`).");
        var v2 = app.MapGroup("/v2").WithTags("KServe v2");
        v2.MapGet("/health/live", () => TypedResults.Ok(new V2ServerLive(true)))
            .WithName("V2ServerLive").WithSummary("Server liveness (Open Inference Protocol)")
            .WithDescription("Always `{ \"live\": true }` while the process runs.");
        v2.MapGet("/health/ready", ServerReady)
            .WithName("V2ServerReady").WithSummary("Server readiness: 200 when a model is loaded for serving")
            .WithDescription("200 `{ \"ready\": true }` when the active model is loaded; 503 with `{ \"error\" }` when no model is active or it cannot be loaded.")
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
        foreach (var (route, suffix) in new[] { ("/models/{name}", ""), ("/models/{name}/versions/{version}", "Version") })
        {
            var which = suffix == "" ? "the model (its active version if it is the active model, else its newest)" : "that version of the model";
            v2.MapGet(route, ModelMetadata)
                .WithName("V2ModelMetadata" + suffix).WithSummary("Model metadata: inputs, outputs, versions")
                .WithDescription($"The inputs (`input` FP32 [-1, C, S, S] and `images` BYTES [-1]), outputs (`probabilities`, `label`), stored versions and platform (`onnxruntime_onnx` or `torchsharp_nin`, by the serving engine) of {which}. 404 for an unknown model or version.")
                .Produces<V2Error>(StatusCodes.Status404NotFound);
            v2.MapGet(route + "/ready", ModelReady)
                .WithName("V2ModelReady" + suffix).WithSummary("Model readiness")
                .WithDescription($"200 when {which} can be loaded; 404 unknown model or version; 503 it cannot be loaded; 401 a version other than the active one without a key (when API keys are configured); 429 too many loads of non-active versions without a key.")
                .Produces<V2Error>(StatusCodes.Status401Unauthorized)
                .Produces<V2Error>(StatusCodes.Status404NotFound)
                .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
                .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
            v2.MapPost(route + "/infer", Infer)
                .WithName("V2ModelInfer" + suffix)
                .WithSummary("Run inference (Open Inference Protocol)")
                .WithDescription($$"""
                    Runs {{which}}. Inputs: either `input`, an FP32 tensor of shape [N, C, S, S] already preprocessed (pixels
                    scaled to [0,1] at the model's image size S), or `images`, a BYTES tensor of shape [N] whose elements are
                    encoded image files (base64 strings in JSON), decoded and preprocessed as /predict does. Outputs:
                    `probabilities` (FP32 [N, classes]) and `label` (BYTES [N]); `outputs` in the request picks which, in order.
                    Binary tensor data extension: with the `Inference-Header-Content-Length` header, the body is that many bytes
                    of JSON followed by the tensors whose `parameters.binary_data_size` is set (FP32 little-endian; BYTES as a
                    4-byte little-endian length and the bytes, per element); `binary_data: true` on an output, or
                    `binary_data_output: true` on the request, returns outputs the same way (`application/octet-stream`).
                    FP32 values must be finite and within ±1e6. Errors are `{ "error": "..." }`: 400 a malformed or null input,
                    values out of range or results that are not finite; 401 a version other than the active one without a key
                    (when API keys are configured); 429 rate limit, or too many loads of non-active versions without a key.
                    """)
                .Accepts<V2InferRequest>("application/json", "application/octet-stream")
                .Produces<V2InferResponse>()
                .Produces<V2Error>(StatusCodes.Status400BadRequest)
                .Produces<V2Error>(StatusCodes.Status401Unauthorized)
                .Produces<V2Error>(StatusCodes.Status404NotFound)
                .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge)
                .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
                .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable)
                .RequireRateLimiting(SecurityExtensions.PredictPolicy);
        }

        return app;
    }

    public static Ok<V2ServerMetadata> ServerMetadata() =>
        TypedResults.Ok(new V2ServerMetadata(ServerName, typeof(KServeApi).Assembly.GetName().Version?.ToString(3) ?? "0.0.0", ["binary_tensor_data"]));

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

    public static Results<Ok<V2ModelMetadata>, JsonHttpResult<V2Error>> ModelMetadata(string name, string? version, ModelStore store, ModelRegistry registry)
    {
        var info = Resolve(name, version, store);
        if (info is null)
        {
            return NotFound(name, version);
        }

        var m = info.Metadata;
        var versions = store.List().Where(v => v.Name == name).Select(v => v.Version.ToString(CultureInfo.InvariantCulture)).ToArray();
        return TypedResults.Ok(new V2ModelMetadata(
            name,
            versions,
            registry.Engine == OnnxModelRunner.EngineName ? "onnxruntime_onnx" : "torchsharp_" + (NetworkArchitectures.Find(m.Architecture)?.Name ?? m.Architecture),
            [new V2TensorMetadata(InputName, "FP32", [-1, m.InputChannels, m.ImageSize, m.ImageSize]), new V2TensorMetadata(ImagesInputName, "BYTES", [-1])],
            [new V2TensorMetadata(ProbabilitiesOutput, "FP32", [-1, m.ClassNames.Count]), new V2TensorMetadata(LabelOutput, "BYTES", [-1])]));
    }

    public static async Task<Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>>> ModelReady(string name, string? version, HttpContext http, ModelStore store, ModelRegistry registry, VersionAccess access, CancellationToken cancellationToken)
    {
        var info = Resolve(name, version, store);
        if (info is null)
        {
            return NotFound(name, version);
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

    public static async Task<Results<Ok<V2InferResponse>, KServeBinaryResult, JsonHttpResult<V2Error>>> Infer(
        string name, string? version, HttpRequest http, ModelStore store, ModelRegistry registry, InferenceEngine engine, IOptions<ServingOptions> options, VersionAccess access, CancellationToken cancellationToken)
    {
        var info = Resolve(name, version, store);
        if (info is null)
        {
            return NotFound(name, version);
        }

        var limits = options.Value;
        var (body, bodyError) = await ReadBodyAsync(http, limits.MaxRequestBytes, cancellationToken);
        if (bodyError is not null)
        {
            return bodyError;
        }

        var jsonLength = body!.Length;
        if (http.Headers.TryGetValue(KServeBinary.HeaderLengthHeader, out var headerLength))
        {
            if (!int.TryParse(headerLength.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out jsonLength) || jsonLength > body.Length)
            {
                return BadRequest($"{KServeBinary.HeaderLengthHeader} must be the JSON's length in bytes, at most the body's {body.Length:N0}; got '{headerLength}'.");
            }
        }

        V2InferRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<V2InferRequest>(body.AsSpan(0, jsonLength), JsonSerializerOptions.Web);
        }
        catch (JsonException ex)
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

        if (request is null || request.Inputs is null || request.Inputs.Count != 1 || request.Inputs[0] is null)
        {
            return BadRequest($"Send exactly one input: '{InputName}' (FP32 [N, C, S, S]) or '{ImagesInputName}' (BYTES [N]).");
        }

        if (request.Inputs[0] is not { } input || input.Shape is null || input.Datatype is null || input.Name is null)
        {
            return BadRequest("The input must be an object with 'name', 'shape' (an array of integers), 'datatype' and 'data'; null is not an input.");
        }

        var (parts, splitError) = KServeBinary.Split(request.Inputs, body.AsMemory(jsonLength));
        if (splitError is not null)
        {
            return BadRequest(splitError);
        }

        var (outputs, outputError) = ReadOutputs(request);
        if (outputError is not null)
        {
            return BadRequest(outputError);
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
            var (inputs, error) = ReadInputs(input, parts![0], model.Metadata, limits);
            if (error is not null)
            {
                return BadRequest(error);
            }

            var probabilities = (await engine.InferAsync(model, inputs!, cancellationToken)).Select(r => r.Probabilities).ToArray();
            if (Array.FindIndex(probabilities, p => !Array.TrueForAll(p, float.IsFinite)) is var bad and >= 0)
            {
                return BadRequest($"Input {bad} gives non-finite probabilities (NaN or infinity): the values overflow the network. Send pixels scaled to [0, 1], as the model was trained on.");
            }

            var classes = model.Metadata.ClassNames;
            var tensors = new List<V2OutputTensor>();
            var binaries = new List<byte[]>();
            foreach (var (output, binary) in outputs!)
            {
                var (shape, datatype) = output == ProbabilitiesOutput ? (new long[] { probabilities.Length, classes.Count }, "FP32") : ([probabilities.Length], "BYTES");
                if (binary)
                {
                    var bytes = output == ProbabilitiesOutput
                        ? KServeBinary.FromFloats(probabilities.SelectMany(p => p).ToArray())
                        : KServeBinary.FromStrings(probabilities.Select(p => classes[Array.IndexOf(p, p.Max())]));
                    binaries.Add(bytes);
                    tensors.Add(new V2OutputTensor(output, shape, datatype, null, new Dictionary<string, object> { [KServeBinary.BinaryDataSize] = bytes.Length }));
                }
                else
                {
                    object data = output == ProbabilitiesOutput
                        ? probabilities.SelectMany(p => p).ToArray()
                        : probabilities.Select(p => classes[Array.IndexOf(p, p.Max())]).ToArray();
                    tensors.Add(new V2OutputTensor(output, shape, datatype, data));
                }
            }

            var response = new V2InferResponse(name, model.Version.ToString(CultureInfo.InvariantCulture), request.Id, tensors);
            return binaries.Count > 0 ? new KServeBinaryResult(response, binaries) : TypedResults.Ok(response);
        }
        finally
        {
            model.Release();
        }
    }

    /// <summary>The outputs to return, in order, each with whether it goes as binary data.</summary>
    private static (List<(string Name, bool Binary)>? Outputs, string? Error) ReadOutputs(V2InferRequest request)
    {
        var allBinary = false;
        if (request.Parameters?.TryGetValue(KServeBinary.BinaryDataOutput, out var all) == true)
        {
            if (all.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                return (null, $"{KServeBinary.BinaryDataOutput} must be true or false.");
            }

            allBinary = all.GetBoolean();
        }

        if (request.Outputs is null || request.Outputs.Count == 0)
        {
            return ([(ProbabilitiesOutput, allBinary), (LabelOutput, allBinary)], null);
        }

        var result = new List<(string, bool)>();
        foreach (var output in request.Outputs)
        {
            if (output?.Name is not (ProbabilitiesOutput or LabelOutput))
            {
                return (null, $"Unknown output '{output?.Name}': this model has '{ProbabilitiesOutput}' and '{LabelOutput}'.");
            }

            if (result.Any(r => r.Item1 == output.Name))
            {
                return (null, $"Output '{output.Name}' is requested twice.");
            }

            var binary = allBinary;
            if (output.Parameters?.TryGetValue(KServeBinary.BinaryData, out var flag) == true)
            {
                if (flag.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    return (null, $"Output '{output.Name}': {KServeBinary.BinaryData} must be true or false.");
                }

                binary = flag.GetBoolean();
            }

            result.Add((output.Name, binary));
        }

        return (result, null);
    }

    /// <summary>The whole body, refused beyond <paramref name="limit"/> bytes whatever Content-Length claims.</summary>
    private static async Task<(byte[]? Body, JsonHttpResult<V2Error>? Error)> ReadBodyAsync(HttpRequest http, long limit, CancellationToken cancellationToken)
    {
        if (http.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit;
        }

        if (http.ContentLength > limit)
        {
            return (null, TooLarge(limit));
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        try
        {
            int read;
            while ((read = await http.Body.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return (null, TooLarge(limit));
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge(limit));
        }
        catch (BadHttpRequestException ex)
        {
            return (null, BadRequest(ex.Message));
        }

        return (buffer.ToArray(), null);
    }

    private static (InferenceInput[]? Inputs, string? Error) ReadInputs(V2Tensor tensor, ReadOnlyMemory<byte>? binary, ModelMetadata meta, ServingOptions limits)
    {
        var data = tensor.Data;
        if (binary is null && data.ValueKind != JsonValueKind.Array)
        {
            return (null, $"Input 'data' must be a flat array (or the tensor's bytes after the JSON, with parameters.{KServeBinary.BinaryDataSize}).");
        }

        if (tensor.Shape is null)
        {
            return (null, "Input 'shape' is required.");
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
            float[] values;
            if (binary is { } bytes)
            {
                if (bytes.Length != n * per * 4)
                {
                    return (null, $"FP32 input has {bytes.Length:N0} bytes of binary data; shape [{string.Join(", ", tensor.Shape)}] needs {n * per * 4:N0}.");
                }

                values = KServeBinary.Floats(bytes.Span);
                var bad = Array.FindIndex(values, v => !float.IsFinite(v) || Math.Abs(v) > MaxInputMagnitude);
                if (bad >= 0)
                {
                    return (null, OutOfRange(bad, values[bad]));
                }
            }
            else
            {
                if (data.GetArrayLength() != n * per)
                {
                    return (null, $"FP32 input holds {data.GetArrayLength()} values; shape [{string.Join(", ", tensor.Shape)}] needs {n * per}.");
                }

                values = new float[n * per];
                var i = 0;
                foreach (var v in data.EnumerateArray())
                {
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetSingle(out var f) || !float.IsFinite(f))
                    {
                        return (null, $"FP32 input element {i} is not a finite number.");
                    }

                    if (Math.Abs(f) > MaxInputMagnitude)
                    {
                        return (null, OutOfRange(i, f));
                    }

                    values[i++] = f;
                }
            }

            return (Enumerable.Range(0, (int)n).Select(k => new InferenceInput(null, values.AsSpan(k * per, per).ToArray())).ToArray(), null);
        }

        if (tensor.Datatype == "BYTES")
        {
            List<byte[]> images;
            if (binary is { } bytes)
            {
                var elements = KServeBinary.Elements(bytes.Span, limits.MaxImagesPerRequest);
                if (elements is null)
                {
                    return (null, $"BYTES binary data must be elements of a 4-byte little-endian length and that many bytes, at most {limits.MaxImagesPerRequest} of them.");
                }

                images = elements;
            }
            else
            {
                var count = data.GetArrayLength();
                if (count < 1 || count > limits.MaxImagesPerRequest)
                {
                    return (null, $"BYTES input must hold 1 to {limits.MaxImagesPerRequest} images; got {count}.");
                }

                images = [];
                foreach (var element in data.EnumerateArray())
                {
                    try
                    {
                        images.Add(element.ValueKind == JsonValueKind.String ? Convert.FromBase64String(element.GetString()!) : throw new FormatException());
                    }
                    catch (FormatException)
                    {
                        return (null, $"BYTES element {images.Count} is not a base64 string.");
                    }
                }
            }

            if (images.Count < 1 || images.Count > limits.MaxImagesPerRequest)
            {
                return (null, $"BYTES input must hold 1 to {limits.MaxImagesPerRequest} images; got {images.Count}.");
            }

            if (tensor.Shape.Length != 1 || tensor.Shape[0] != images.Count)
            {
                return (null, $"BYTES input holds {images.Count} images; its shape must be [{images.Count}], got [{string.Join(", ", tensor.Shape)}].");
            }

            var inputs = new List<InferenceInput>();
            foreach (var image in images)
            {
                if (image.Length > limits.MaxImageBytes)
                {
                    return (null, $"Image {inputs.Count} is {image.Length:N0} bytes; at most {limits.MaxImageBytes:N0} are accepted.");
                }

                try
                {
                    var decoded = ImageDecoder.Decode(image, meta.InputChannels, meta.Preprocessing.NativeWidth, meta.Preprocessing.NativeHeight,
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

    private static string OutOfRange(int index, float value) => float.IsFinite(value)
        ? $"FP32 input element {index} is {value:G3}; values must lie within ±{MaxInputMagnitude:G0} (the model takes pixels scaled to [0, 1]), or the network overflows."
        : $"FP32 input element {index} is not a finite number.";

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
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(ex.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return (null, TypedResults.Json(new V2Error(ex.Message), statusCode: StatusCodes.Status429TooManyRequests));
        }
    }

    private static ModelVersionInfo? Resolve(string name, string? version, ModelStore store)
    {
        if (version is not null)
        {
            return int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? store.Find(name, v) : null;
        }

        return store.Active is { } a && a.Name == name ? store.Find(name, a.Version) : store.Latest(name);
    }

    private static JsonHttpResult<V2Error> NotFound(string name, string? version) =>
        TypedResults.Json(new V2Error(version is null ? $"Unknown model '{name}'." : $"Unknown model '{name}' version '{version}'."), statusCode: StatusCodes.Status404NotFound);

    private static JsonHttpResult<V2Error> BadRequest(string error) =>
        TypedResults.Json(new V2Error(error), statusCode: StatusCodes.Status400BadRequest);

    private static JsonHttpResult<V2Error> TooLarge(long limit) =>
        TypedResults.Json(new V2Error($"The request is larger than {limit:N0} bytes."), statusCode: StatusCodes.Status413PayloadTooLarge);
}
