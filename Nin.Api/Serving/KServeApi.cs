using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing.Template;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using Nin.Model.Network;

namespace Nin.Api.Serving;

/// <summary>
/// The KServe v2 / Open Inference Protocol REST adapter of the data plane, so standard clients (KServe's, Triton's) can
/// call the NiN. Model names are store names; without a version in the route the served version is the one this
/// replica serves if it is that model, else the newest. Every error is <c>{ "error": "..." }</c>, unknown routes under
/// <c>/v2</c> included.
/// </summary>
public static class KServeApi
{
    public static IEndpointRouteBuilder MapKServeApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v2", ServerMetadata).WithTags("KServe v2").AddEndpointFilter(RefuseWrongKey)
            .WithName("V2ServerMetadata").WithSummary("Server metadata (Open Inference Protocol)")
            .WithDescription("The server's name, version and supported extensions (`binary_tensor_data`, `classification`, `model_configuration`, `model_repository`, `statistics`).");
        var v2 = app.MapGroup("/v2").WithTags("KServe v2").AddEndpointFilter(RefuseWrongKey)
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status403Forbidden, typeof(V2Error), ["application/json"]));
        v2.MapGet("/health/live", () => TypedResults.Ok(new V2ServerLive(true)))
            .WithName("V2ServerLive").WithSummary("Server liveness (Open Inference Protocol)")
            .WithDescription("Always `{ \"live\": true }` while the process runs.");
        v2.MapGet("/health/ready", ServerReady)
            .WithName("V2ServerReady").WithSummary("Server readiness: 200 when a model is loaded for serving")
            .WithDescription("200 `{ \"ready\": true }` when a version is loaded and serving (also while a newly activated one loads or failed to load: the old one serves); 503 with `{ \"error\" }` when no model is active or none can be loaded.")
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
        v2.MapGet("/models/stats", AllStatistics)
            .WithName("V2ModelStatisticsAll").WithSummary("Statistics of every version served since start (Triton's statistics extension)")
            .WithDescription("Per version: requests that succeeded and failed with their cumulative time, the time in the queue, decoding (`compute_input`) and forward passes (`compute_infer`), images classified and the batch sizes that served them.");
        v2.MapPost("/repository/index", RepositoryIndex)
            .WithName("V2RepositoryIndex").WithSummary("The model repository's versions and whether each is loaded here")
            .WithDescription("Every stored version: `READY` when loaded on this replica, else `UNAVAILABLE` with the reason (not loaded, or why it failed to load). An optional JSON body `{ \"ready\": true }` lists only loaded ones; a malformed body or an unknown field is a 400.")
            // Any Content-Type, or none: Triton's client posts the index request without a body.
            .Accepts<V2RepositoryIndexRequest>(isOptional: true, "application/json", "*/*")
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge);
        v2.MapPost("/repository/models/{name}/load", RepositoryLoad)
            .WithName("V2RepositoryLoad").WithSummary("Load a model on this replica (the model repository extension)")
            .WithDescription("Loads and warms the model's version (the one this replica serves if it is that model, else its newest), so its first request does not wait; 200 `{}` when it is loaded. Nin's versions carry their own configuration: a `config` parameter is a 400. 404 unknown model; 503 it cannot be loaded (with the cause); 401 without a key when API keys are configured and it is not the active model; 429 too many loads of non-active versions without a key.")
            .Accepts<V2RepositoryControlRequest>(isOptional: true, "application/json", "*/*")
            .Produces<V2RepositoryControlResponse>()
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge)
            .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
        v2.MapPost("/repository/models/{name}/unload", RepositoryUnload)
            .WithName("V2RepositoryUnload").WithSummary("Unload a model's cached versions from this replica (the model repository extension)")
            .WithDescription("Frees the memory of the model's versions loaded on this replica (requests using one finish first); 200 `{}`. The version this replica serves is not unloaded: 409 for the active model (activate another model to stop serving it). 404 unknown model; needs a key with the `admin` scope when API keys are configured.")
            .Accepts<V2RepositoryControlRequest>(isOptional: true, "application/json", "*/*")
            .Produces<V2RepositoryControlResponse>()
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status409Conflict)
            .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge);
        foreach (var (route, suffix) in new[] { ("/models/{name}", ""), ("/models/{name}/versions/{version}", "Version") })
        {
            var which = suffix == "" ? "the model (the version this replica serves if it is that model, else its newest)" : "that version of the model";
            v2.MapGet(route, ModelMetadata)
                .WithName("V2ModelMetadata" + suffix).WithSummary("Model metadata: inputs, outputs, versions")
                .WithDescription($"The inputs (`input` FP32 [-1, C, S, S] and `images` BYTES [-1]), outputs (`probabilities`, `label`), stored versions and platform (`onnxruntime_onnx` or `torchsharp_nin`, by the serving engine) of {which}. 404 for an unknown model or version.")
                .Produces<V2Error>(StatusCodes.Status404NotFound);
            v2.MapGet(route + "/config", ModelConfig)
                .WithName("V2ModelConfig" + suffix).WithSummary("Model configuration (Triton's model_configuration extension)")
                .WithDescription($"The configuration of {which} in Triton's terms: `max_batch_size`, inputs and outputs with `data_type` and `dims` (without the batch dimension), the dynamic batcher and the admission queue, the preprocessing the FP32 input expects (pixels x/255 in [0, 1], resized bilinearly from the native size to S, NCHW) and the class labels. 404 for an unknown model or version.")
                .Produces<V2Error>(StatusCodes.Status404NotFound);
            v2.MapGet(route + "/stats", ModelStatistics)
                .WithName("V2ModelStatistics" + suffix).WithSummary("Model statistics (Triton's statistics extension)")
                .WithDescription($"Statistics of {(suffix == "" ? "every version of the model" : "that version")} since this process started. 404 for an unknown model or version.")
                .Produces<V2Error>(StatusCodes.Status404NotFound);
            v2.MapGet(route + "/ready", ModelReady)
                .WithName("V2ModelReady" + suffix).WithSummary("Model readiness")
                .WithDescription($"200 when {which} can be loaded; 404 unknown model or version; 503 it cannot be loaded (with the cause); 401 a version other than the active one without a key (when API keys are configured); 429 too many loads of non-active versions without a key.")
                .Produces<V2Error>(StatusCodes.Status401Unauthorized)
                .Produces<V2Error>(StatusCodes.Status404NotFound)
                .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
                .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);
            v2.MapPost(route + "/infer", Infer)
                .WithName("V2ModelInfer" + suffix)
                .WithSummary("Run inference (Open Inference Protocol)")
                .WithDescription($$"""
                    Runs {{which}}. Inputs: either `input`, an FP32 tensor of shape [N, C, S, S] already preprocessed (pixels
                    scaled to [0,1] at the model's image size S), or `images`, a BYTES tensor of shape [N] (or [N, 1]) whose elements are
                    encoded image files (base64 strings in JSON), decoded and preprocessed as /predict does; any other input name or
                    datatype is a 400. Outputs: `probabilities` (FP32 [N, classes]) and `label` (BYTES [N]); `outputs` in the request
                    picks which, in order. Classification extension: `parameters: { "classification": k }` (or `class_count`) on an
                    output returns BYTES [N, k] of `"probability:index:label"`, most probable first.
                    Class activation maps: `parameters: { "explain": "cam" }` on the request (and `"explain_class"`: an index or a
                    class name; default each input's predicted class) adds the output `cam`, FP32 [N, H, W] in 0–1, whose
                    parameters name the `method` (`cam` or `grad-cam`), the `layer` and the explained `classes` (as /predict's `explain=cam`).
                    Binary tensor data extension: with the `Inference-Header-Content-Length` header, the body is that many bytes
                    of JSON followed by the tensors whose `parameters.binary_data_size` is set (FP32 little-endian; BYTES as a
                    4-byte little-endian length and the bytes, per element); `binary_data: true` on an output, or
                    `binary_data_output: true` on the request, returns outputs the same way (`application/octet-stream`).
                    Deadline: `parameters: { "timeout": microseconds }` (as Triton's clients send it) or the `X-Request-Timeout-Ms`
                    header; work for a request past it is dropped before decoding and before its forward pass (504).
                    FP32 values must be finite and within ±1e6. Errors are `{ "error": "..." }`: 400 a malformed or null input,
                    an unknown input name, values out of range or results that are not finite; 401 a version other than the active
                    one without a key (when API keys are configured); 403 a key that is not valid; 429 rate limit, or too many loads
                    of non-active versions without a key; 503 + Retry-After the inference queue is full, the service is saturated (Serving:MaxSchedulingDelayMilliseconds) or the version cannot be loaded
                    on this replica now; 504 the deadline passed.
                    """)
                // Any Content-Type, or none: Triton's client sends binary bodies without one; the body is parsed by its own rules.
                .Accepts<V2InferRequest>("application/json", "application/octet-stream", "*/*")
                .Produces<V2InferResponse>()
                .Produces<V2Error>(StatusCodes.Status400BadRequest)
                .Produces<V2Error>(StatusCodes.Status401Unauthorized)
                .Produces<V2Error>(StatusCodes.Status404NotFound)
                .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge)
                .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
                .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable)
                .Produces<V2Error>(StatusCodes.Status504GatewayTimeout)
                .RequireRateLimiting(SecurityExtensions.PredictPolicy);
        }

        // Any other path under /v2, or another method on a known one: the protocol's error body, not an empty 404/405.
        v2.MapFallback("{**path}", NoRoute).ExcludeFromDescription();
        return app;
    }

    /// <summary>
    /// The /v2 fallback: 405 with <c>Allow</c> when the path is a route that answers other methods (as everywhere else
    /// in the API), 404 when it is none; both with the protocol's <c>{ "error": ... }</c> body.
    /// </summary>
    private static JsonHttpResult<V2Error> NoRoute(HttpContext http, EndpointDataSource endpoints)
    {
        var path = http.Request.Path;
        var allowed = endpoints.Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText is { } raw && raw.StartsWith("/v2/", StringComparison.Ordinal) && !e.RoutePattern.Parameters.Any(p => p.IsCatchAll))
            .Where(e => new TemplateMatcher(TemplateParser.Parse(e.RoutePattern.RawText!), []).TryMatch(path, []))
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [])
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (allowed.Length > 0)
        {
            http.Response.Headers.Allow = string.Join(", ", allowed);
            return TypedResults.Json(new V2Error($"{http.Request.Method} is not allowed on {path}: it answers {string.Join(", ", allowed)}."), statusCode: StatusCodes.Status405MethodNotAllowed);
        }

        return TypedResults.Json(new V2Error($"No route {http.Request.Method} {path}: see GET /v2 and the OpenAPI document."), statusCode: StatusCodes.Status404NotFound);
    }

    /// <summary>A key that is sent must be valid on every /v2 route (403, as on <c>/train</c>).</summary>
    private static async ValueTask<object?> RefuseWrongKey(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var keys = http.RequestServices.GetRequiredService<ApiKeyRing>().Any;
        if (keys && ApiKeyMiddleware.KeyOf(http) is null && ApiKeyMiddleware.PresentedKey(http.Request) is not null)
        {
            return TypedResults.Json(new V2Error("The API key is not valid: the key sent is not one of the service's keys."), statusCode: StatusCodes.Status403Forbidden);
        }

        return await next(context);
    }

    public static Ok<V2ServerMetadata> ServerMetadata() =>
        TypedResults.Ok(new V2ServerMetadata(OpenInference.ServerName, OpenInference.ServerVersion, OpenInference.Extensions));

    public static async Task<Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>>> ServerReady(HttpContext http, InferenceDataPlane plane, CancellationToken cancellationToken)
    {
        try
        {
            await plane.ReadyAsync(null, null, keyed: true, cancellationToken);
            return TypedResults.Ok(new V2ServerReady(true));
        }
        catch (InferenceException ex)
        {
            return Error(http, ex);
        }
    }

    public static Results<Ok<V2ModelMetadata>, JsonHttpResult<V2Error>> ModelMetadata(string name, string? version, ModelStore store, ModelRegistry registry)
    {
        var info = Resolve(name, version, store, registry);
        if (info is null)
        {
            return NotFound(name, version);
        }

        var m = info.Metadata;
        var versions = store.List().Where(v => v.Name == name).Select(v => v.Version.ToString(CultureInfo.InvariantCulture)).ToArray();
        return TypedResults.Ok(new V2ModelMetadata(name, versions, Platform(registry, m), OpenInference.Inputs(m), OpenInference.Outputs(m)));
    }

    public static Results<Ok<V2ModelConfig>, JsonHttpResult<V2Error>> ModelConfig(string name, string? version, ModelStore store, ModelRegistry registry, InferenceEngine engine, InferenceDataPlane plane)
    {
        var info = Resolve(name, version, store, registry);
        if (info is null)
        {
            return NotFound(name, version);
        }

        var m = info.Metadata;
        var p = m.Preprocessing;
        var limits = plane.Limits;
        return TypedResults.Ok(new V2ModelConfig(
            name,
            info.Version.ToString(CultureInfo.InvariantCulture),
            Platform(registry, m),
            registry.Engine,
            engine.MaxBatchSize,
            [
                new V2ConfigTensor(OpenInference.InputName, "TYPE_FP32", "FORMAT_NCHW", [m.InputChannels, m.ImageSize, m.ImageSize]),
                new V2ConfigTensor(OpenInference.ImagesInputName, "TYPE_STRING", "FORMAT_NONE", [1]),
            ],
            [
                new V2ConfigTensor(OpenInference.ProbabilitiesOutput, "TYPE_FP32", "FORMAT_NONE", [m.ClassNames.Count], "labels"),
                new V2ConfigTensor(OpenInference.LabelOutput, "TYPE_STRING", "FORMAT_NONE", [1]),
            ],
            new V2DynamicBatching((long)(limits.MaxBatchDelayMilliseconds * 1000),
                new V2QueuePolicy("REJECT", limits.MaxQueuedImages, limits.MaxQueueMilliseconds, AllowTimeoutOverride: true)),
            new V2Preprocessing(m.InputChannels, p.NativeWidth, p.NativeHeight, m.ImageSize, $"{p.Scale} (pixels in [0, 1])",
                $"{p.Resize} from {p.NativeWidth}x{p.NativeHeight} to {m.ImageSize}x{m.ImageSize} (align_corners=false)", p.Foreground, "NCHW"),
            m.ClassNames));
    }

    public static Results<Ok<V2ModelStatsResponse>, JsonHttpResult<V2Error>> ModelStatistics(string name, string? version, ModelStore store, ModelRegistry registry, ServingMetrics metrics)
    {
        var info = Resolve(name, version, store, registry);
        if (info is null)
        {
            return NotFound(name, version);
        }

        var versions = version is null ? store.List().Where(v => v.Name == name).Select(v => v.Version) : [info.Version];
        return TypedResults.Ok(new V2ModelStatsResponse(versions.Select(v => Statistics(name, v, metrics)).ToArray()));
    }

    public static Ok<V2ModelStatsResponse> AllStatistics(ModelStore store, ServingMetrics metrics) =>
        TypedResults.Ok(new V2ModelStatsResponse(store.List().Select(v => Statistics(v.Name, v.Version, metrics)).ToArray()));

    private static V2ModelStats Statistics(string name, int version, ServingMetrics metrics)
    {
        var s = metrics.Statistics(name, version);
        return new V2ModelStats(name, version.ToString(CultureInfo.InvariantCulture), s.LastInference, s.InferenceCount, s.SuccessCount,
            new V2InferStats(new(s.SuccessCount, s.SuccessNs), new(s.FailCount, s.FailNs), new(s.SuccessCount, s.QueueNs),
                new(s.SuccessCount, s.DecodeNs), new(s.SuccessCount, s.ForwardNs), new(s.SuccessCount, 0)),
            s.Batches.OrderBy(b => b.Key).Select(b => new V2BatchStats(b.Key, new(b.Value.Count, b.Value.Ns))).ToArray());
    }

    public static async Task<Results<Ok<V2RepositoryModel[]>, JsonHttpResult<V2Error>>> RepositoryIndex(HttpRequest http, ModelStore store, ModelRegistry registry, CancellationToken cancellationToken)
    {
        bool readyOnly;
        try
        {
            readyOnly = (await ReadSmallJsonAsync<V2RepositoryIndexRequest>(http, "{ \"ready\": true|false }", cancellationToken))?.Ready == true;
        }
        catch (InferenceException ex)
        {
            return Error(http.HttpContext, ex);
        }

        var loaded = registry.Loaded.ToHashSet();
        var index = store.List().Select(v =>
        {
            var ready = loaded.Contains((v.Name, v.Version));
            var failure = ready ? null : registry.FailureOf(v.Name, v.Version);
            return new V2RepositoryModel(v.Name, v.Version.ToString(CultureInfo.InvariantCulture), ready ? "READY" : "UNAVAILABLE",
                ready ? null : failure is not null ? $"failed to load: {failure.Cause}" : "not loaded on this replica (it loads on its first request)");
        });
        return TypedResults.Ok((readyOnly ? index.Where(m => m.State == "READY") : index).ToArray());
    }

    /// <summary>
    /// Triton's model repository load: the model's default version loaded and warmed here, through the same access
    /// rules and load bounds as a readiness check of it.
    /// </summary>
    public static async Task<Results<Ok<V2RepositoryControlResponse>, JsonHttpResult<V2Error>>> RepositoryLoad(
        string name, HttpContext http, ModelStore store, ModelRegistry registry, InferenceDataPlane plane, InferenceAccess access, CancellationToken cancellationToken)
    {
        try
        {
            var parameters = (await ReadSmallJsonAsync<V2RepositoryControlRequest>(http.Request, ControlShape, cancellationToken))?.Parameters;
            if (parameters?.ContainsKey("config") == true)
            {
                throw InferenceErrors.BadRequest("Nin's versions carry their own configuration (see GET /v2/models/{name}/config): a 'config' parameter cannot replace it.");
            }

            ParseVersion(name, null, store, registry);
            access.Check(http, name, null, inference: false);
            await plane.ReadyAsync(name, null, VersionAccess.IsKeyed(http), cancellationToken);
            return TypedResults.Ok(new V2RepositoryControlResponse());
        }
        catch (InferenceException ex)
        {
            return Error(http, ex);
        }
    }

    /// <summary>Triton's model repository unload: the model's cached versions leave this replica; the served one stays.</summary>
    /// <remarks>The key middleware asks for the <c>admin</c> scope when keys are configured (<see cref="ApiScopes"/>).</remarks>
    public static async Task<Results<Ok<V2RepositoryControlResponse>, JsonHttpResult<V2Error>>> RepositoryUnload(
        string name, HttpContext http, ModelStore store, ModelRegistry registry, CancellationToken cancellationToken)
    {
        try
        {
            await ReadSmallJsonAsync<V2RepositoryControlRequest>(http.Request, ControlShape, cancellationToken);
            ParseVersion(name, null, store, registry);
            if (store.Active is { } active && active.Name == name)
            {
                return TypedResults.Json(new V2Error($"'{name}' is the active model, which this replica serves: activate another model (POST /models/{{name}}/versions/{{version}}/activate) to stop serving it."), statusCode: StatusCodes.Status409Conflict);
            }

            registry.Unload(name);
            return TypedResults.Ok(new V2RepositoryControlResponse());
        }
        catch (InferenceException ex)
        {
            return Error(http, ex);
        }
    }

    private const string ControlShape = "{ \"parameters\": { ... } }";

    /// <summary>
    /// The optional small JSON body of the repository requests (index, load, unload), or null without one: over 4,096
    /// bytes is a 413, and like every JSON body a malformed one, or a field the request lacks, is a 400 saying where.
    /// </summary>
    private static async Task<T?> ReadSmallJsonAsync<T>(HttpRequest http, string shape, CancellationToken cancellationToken)
    {
        if (http.ContentLength is > 4096)
        {
            throw new InferenceException(InferenceErrorKind.TooLarge, "Request too large.", $"This request's body is a small JSON object, {shape}; this one is over 4,096 bytes.");
        }

        if (http.ContentLength is not > 0 && !(http.ContentLength is null && http.Headers.TransferEncoding.Count > 0))
        {
            return default; // Triton's clients send no body
        }

        try
        {
            return await JsonSerializer.DeserializeAsync<T>(http.Body, JsonSerializerOptions.Web, cancellationToken);
        }
        catch (JsonException ex)
        {
            throw InferenceErrors.BadRequest($"The request is not {shape}{(ex.Path is { Length: > 0 } at ? $": the value at {at} is unknown, malformed or of the wrong type" : "")}.");
        }
    }

    public static async Task<Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>>> ModelReady(
        string name, string? version, HttpContext http, ModelStore store, ModelRegistry registry, InferenceDataPlane plane, InferenceAccess access, CancellationToken cancellationToken)
    {
        try
        {
            var v = ParseVersion(name, version, store, registry);
            access.Check(http, name, v, inference: false);
            await plane.ReadyAsync(name, v, VersionAccess.IsKeyed(http), cancellationToken);
            return TypedResults.Ok(new V2ServerReady(true));
        }
        catch (InferenceException ex)
        {
            return Error(http, ex);
        }
    }

    /// <summary>The REST adapter of inference: the wire format in, the data plane's outcome or refusal out.</summary>
    public static async Task<Results<Ok<V2InferResponse>, KServeBinaryResult, JsonHttpResult<V2Error>>> Infer(
        string name, string? version, HttpRequest http, ModelStore store, ModelRegistry registry, InferenceDataPlane plane, InferenceAccess access, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var v = ParseVersion(name, version, store, registry);
            access.Check(http.HttpContext, name, v, inference: true);
            plane.ShedIfFull("v2");
            var headerTimeout = InferenceDeadlines.FromHeader(http);
            var body = await ReadBodyAsync(http, plane.Limits.MaxRequestBytes, cancellationToken);
            var request = ParseRequest(http, body, out var jsonLength);
            var parts = KServeBinary.Split(request.Inputs, body.AsMemory(jsonLength));
            var input = Input(request.Inputs[0], parts[0]);
            var requested = OpenInference.Requested(request.Outputs?.Select(RequestedOutput).ToArray(), Flag(request.Parameters, KServeBinary.BinaryDataOutput, null) ?? false);
            var timeout = InferenceDeadlines.Earliest(headerTimeout, InferenceDeadlines.FromParameters(request.Parameters));
            var call = OpenInference.Call("v2", name, v, input, plane.Limits, VersionAccess.IsKeyed(http.HttpContext), timeout, started, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            (call.Explain, call.ExplainClass) = OpenInference.ExplainParameters(request.Parameters);
            call.TrafficKey = http.Headers[TrafficRouter.KeyHeader].FirstOrDefault();
            var outcome = await plane.InferAsync(call, cancellationToken);

            var tensors = new List<V2OutputTensor>();
            var binaries = new List<byte[]>();
            foreach (var output in OpenInference.Outputs(outcome, requested))
            {
                if (output.Binary)
                {
                    var bytes = output.Floats is { } f ? KServeBinary.FromFloats(f) : KServeBinary.FromStrings(output.Strings!);
                    binaries.Add(bytes);
                    tensors.Add(new V2OutputTensor(output.Name, output.Shape, output.Datatype, null, new Dictionary<string, object> { [KServeBinary.BinaryDataSize] = bytes.Length }));
                }
                else
                {
                    tensors.Add(new V2OutputTensor(output.Name, output.Shape, output.Datatype, (object?)output.Floats ?? output.Strings));
                }
            }

            if (OpenInference.CamOutput(outcome) is { } cam)
            {
                var binary = Flag(request.Parameters, KServeBinary.BinaryDataOutput, null) ?? false;
                var bytes = binary ? KServeBinary.FromFloats(cam.Values) : null;
                if (bytes is not null)
                {
                    binaries.Add(bytes);
                    cam.Parameters[KServeBinary.BinaryDataSize] = bytes.Length;
                }

                tensors.Add(new V2OutputTensor(OpenInference.CamOutputName, cam.Shape, "FP32", bytes is null ? cam.Values : null, cam.Parameters));
            }

            var response = new V2InferResponse(name, outcome.Version.ToString(CultureInfo.InvariantCulture), request.Id, tensors);
            return binaries.Count > 0 ? new KServeBinaryResult(response, binaries) : TypedResults.Ok(response);
        }
        catch (InferenceException ex)
        {
            return Error(http.HttpContext, ex);
        }
    }

    /// <summary>The JSON part of the body as an inference request with exactly one well-formed input.</summary>
    private static V2InferRequest ParseRequest(HttpRequest http, byte[] body, out int jsonLength)
    {
        jsonLength = body.Length;
        if (http.Headers.TryGetValue(KServeBinary.HeaderLengthHeader, out var headerLength)
            && (!int.TryParse(headerLength.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out jsonLength) || jsonLength > body.Length))
        {
            throw InferenceErrors.BadRequest($"{KServeBinary.HeaderLengthHeader} must be the JSON's length in bytes, at most the body's {body.Length:N0}; got '{headerLength}'.");
        }

        V2InferRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<V2InferRequest>(body.AsSpan(0, jsonLength), JsonSerializerOptions.Web);
        }
        catch (JsonException ex)
        {
            // Where the JSON went wrong, in the client's own document; never the exception's text.
            throw InferenceErrors.BadRequest(ex.Path is { Length: > 0 } at
                ? $"The body is not an inference request: the value at {at} (line {ex.LineNumber + 1}) is missing, malformed or of the wrong type."
                : "The body is not an inference request: it is not valid JSON of that shape.");
        }

        if (request is null || request.Inputs is null || request.Inputs.Count != 1 || request.Inputs[0] is null)
        {
            throw InferenceErrors.BadRequest($"Send exactly one input: '{OpenInference.InputName}' (FP32 [N, C, S, S]) or '{OpenInference.ImagesInputName}' (BYTES [N]).");
        }

        if (request.Inputs[0] is not { } input || input.Shape is null || input.Datatype is null || input.Name is null)
        {
            throw InferenceErrors.BadRequest("The input must be an object with 'name', 'shape' (an array of integers), 'datatype' and 'data'; null is not an input.");
        }

        return request;
    }

    /// <summary>A JSON or binary input tensor in protocol-neutral form (values read, nothing decoded yet).</summary>
    private static OipInput Input(V2Tensor tensor, ReadOnlyMemory<byte>? binary)
    {
        var data = tensor.Data;
        if (binary is null && data.ValueKind != JsonValueKind.Array)
        {
            throw InferenceErrors.BadRequest($"Input 'data' must be an array, flat or nested in row-major order (or the tensor's bytes after the JSON, with parameters.{KServeBinary.BinaryDataSize}).");
        }

        if (tensor.Datatype == "FP32")
        {
            if (binary is { } bytes)
            {
                var expected = tensor.Shape.Aggregate(1L, (a, d) => d < 0 ? -1 : a * d) * 4;
                if (bytes.Length % 4 != 0 || (expected >= 0 && bytes.Length != expected))
                {
                    throw InferenceErrors.BadRequest($"FP32 input has {bytes.Length:N0} bytes of binary data; shape [{string.Join(", ", tensor.Shape)}] needs {expected:N0}.");
                }

                return new OipInput(tensor.Name, tensor.Datatype, tensor.Shape, KServeBinary.Floats(bytes.Span), null);
            }

            var values = new float[IsFlat(data) ? data.GetArrayLength() : Leaves(data).Count()];
            var i = 0;
            foreach (var v in Elements(data))
            {
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetSingle(out var f) || !float.IsFinite(f))
                {
                    throw InferenceErrors.BadRequest($"FP32 input element {i} is not a finite number.");
                }

                values[i++] = f;
            }

            return new OipInput(tensor.Name, tensor.Datatype, tensor.Shape, values, null);
        }

        if (tensor.Datatype == "BYTES")
        {
            if (binary is { } bytes)
            {
                var elements = KServeBinary.Elements(bytes, 4096)
                    ?? throw InferenceErrors.BadRequest("BYTES binary data must be elements of a 4-byte little-endian length and that many bytes.");
                return new OipInput(tensor.Name, tensor.Datatype, tensor.Shape, null, elements);
            }

            var images = new List<ReadOnlyMemory<byte>>();
            foreach (var element in Elements(data))
            {
                try
                {
                    images.Add(element.ValueKind == JsonValueKind.String ? Convert.FromBase64String(element.GetString()!) : throw new FormatException());
                }
                catch (FormatException)
                {
                    throw InferenceErrors.BadRequest($"BYTES element {images.Count} is not a base64 string.");
                }
            }

            return new OipInput(tensor.Name, tensor.Datatype, tensor.Shape, null, images);
        }

        return new OipInput(tensor.Name, tensor.Datatype, tensor.Shape, null, null); // refused by name and datatype next
    }

    /// <summary>
    /// A tensor's elements in row-major order: the protocol lets JSON data be flat (<c>[1, 2, 4, 5]</c>) or nested in
    /// the tensor's own dimensions (<c>[[1, 2], [4, 5]]</c>); the count is checked against the shape afterwards. The
    /// nesting is bounded by the JSON reader's depth limit.
    /// </summary>
    private static IEnumerable<JsonElement> Elements(JsonElement array) => IsFlat(array) ? array.EnumerateArray() : Leaves(array);

    /// <summary>Flat when its first element is no array (every request a client library sends): read as it is.</summary>
    private static bool IsFlat(JsonElement array) => array.GetArrayLength() == 0 || array[0].ValueKind != JsonValueKind.Array;

    /// <summary>The leaves of nested arrays, depth first.</summary>
    private static IEnumerable<JsonElement> Leaves(JsonElement array)
    {
        foreach (var element in array.EnumerateArray())
        {
            if (element.ValueKind == JsonValueKind.Array)
            {
                foreach (var leaf in Leaves(element))
                {
                    yield return leaf;
                }
            }
            else
            {
                yield return element;
            }
        }
    }

    private static OipRequestedOutput RequestedOutput(V2RequestOutput? output)
    {
        if (output?.Name is null)
        {
            throw InferenceErrors.BadRequest("Each requested output must be an object with a 'name'.");
        }

        var classes = 0L;
        foreach (var parameter in OpenInference.ClassificationParameters)
        {
            if (output.Parameters?.TryGetValue(parameter, out var value) == true
                && (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out classes) || classes < 0 || classes > int.MaxValue))
            {
                throw InferenceErrors.BadRequest($"Output '{output.Name}': {parameter} must be a non-negative integer.");
            }
        }

        return new OipRequestedOutput(output.Name, Flag(output.Parameters, KServeBinary.BinaryData, output.Name) ?? false, (int)classes);
    }

    /// <summary>A boolean parameter, or null when absent; 400 when it is not true or false.</summary>
    private static bool? Flag(IReadOnlyDictionary<string, JsonElement>? parameters, string name, string? output)
    {
        if (parameters?.TryGetValue(name, out var value) != true)
        {
            return null;
        }

        return value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : throw InferenceErrors.BadRequest((output is null ? "" : $"Output '{output}': ") + $"{name} must be true or false.");
    }

    /// <summary>The whole body, refused beyond <paramref name="limit"/> bytes whatever Content-Length claims.</summary>
    private static async Task<byte[]> ReadBodyAsync(HttpRequest http, long limit, CancellationToken cancellationToken)
    {
        if (http.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit;
        }

        if (http.ContentLength > limit)
        {
            throw TooLarge(limit);
        }

        try
        {
            if (http.ContentLength is { } known)
            {
                var exact = new byte[known];
                await http.Body.ReadExactlyAsync(exact, cancellationToken);
                return exact;
            }

            using var buffer = new MemoryStream();
            var chunk = ArrayPool<byte>.Shared.Rent(81920);
            try
            {
                int read;
                while ((read = await http.Body.ReadAsync(chunk, cancellationToken)) > 0)
                {
                    if (buffer.Length + read > limit)
                    {
                        throw TooLarge(limit);
                    }

                    buffer.Write(chunk, 0, read);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            return buffer.ToArray();
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(limit);
        }
        catch (BadHttpRequestException ex)
        {
            throw InferenceErrors.BadRequest(ex.Message);
        }
        catch (EndOfStreamException)
        {
            throw InferenceErrors.BadRequest("The body ended before its Content-Length.");
        }
    }

    private static InferenceException TooLarge(long limit) => InferenceErrors.TooLarge("Request too large.", $"The request is larger than {limit:N0} bytes.");

    internal static string Platform(ModelRegistry registry, ModelMetadata m) =>
        registry.Engine == OnnxModelRunner.EngineName ? "onnxruntime_onnx" : "torchsharp_" + (NetworkArchitectures.Find(m.Architecture)?.Name ?? m.Architecture);

    /// <summary>The route's version as a number (null when the route has none); 404 for an unknown model or version.</summary>
    private static int? ParseVersion(string name, string? version, ModelStore store, ModelRegistry registry)
    {
        // Loaded here: known without reading the store (the hot path of infer).
        if (version is null && registry.Current?.Name == name)
        {
            return null;
        }

        if (version is not null && int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var loaded) && registry.Loaded.Contains((name, loaded)))
        {
            return loaded;
        }

        // A model other than the served one, by name only: known from the store's cached latest version (no folder read).
        var known = version is null ? store.LatestVersion(name) is not null : Resolve(name, version, store, registry) is not null;
        if (!known)
        {
            throw new InferenceException(InferenceErrorKind.NotFound, "Unknown model.",
                version is null ? $"Unknown model '{name}'." : $"Unknown model '{name}' version '{version}'.");
        }

        return version is null ? null : int.Parse(version, NumberStyles.None, CultureInfo.InvariantCulture);
    }

    /// <summary>The stored version a route names (the served one of that model when it names none), or null.</summary>
    internal static ModelVersionInfo? Resolve(string name, string? version, ModelStore store, ModelRegistry registry)
    {
        if (version is not null)
        {
            return int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? store.Find(name, v) : null;
        }

        if (registry.Current is { } served && served.Name == name)
        {
            return store.Find(name, served.Version);
        }

        return store.Active is { } a && a.Name == name ? store.Find(name, a.Version) : store.Latest(name);
    }

    /// <summary>A data-plane refusal as the protocol's error body, with Retry-After when it has one.</summary>
    internal static JsonHttpResult<V2Error> Error(HttpContext http, InferenceException ex)
    {
        if (ex.RetryAfter is { } wait)
        {
            http.Response.Headers.RetryAfter = InferenceErrors.RetryAfterSeconds(wait);
        }

        // An element that is not an image is bad input here: the request's own media type (JSON) is fine.
        var status = ex.Kind == InferenceErrorKind.Unsupported ? StatusCodes.Status400BadRequest : InferenceErrors.HttpStatus(ex.Kind);
        return TypedResults.Json(new V2Error(ex.Message), statusCode: status);
    }

    private static JsonHttpResult<V2Error> NotFound(string name, string? version) =>
        TypedResults.Json(new V2Error(version is null ? $"Unknown model '{name}'." : $"Unknown model '{name}' version '{version}'."), statusCode: StatusCodes.Status404NotFound);
}
