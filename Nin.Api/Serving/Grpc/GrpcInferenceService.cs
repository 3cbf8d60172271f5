using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Nin.Api.Security;
using Nin.Model.Checkpoints;

namespace Nin.Api.Serving.Grpc;

/// <summary>
/// The Open Inference Protocol over gRPC (<c>inference.GRPCInferenceService</c>): a thin adapter of the same data plane as
/// /predict and /v2 — the same model acquisition, admission, decode gate, deadlines (the call's own deadline, or the
/// <c>timeout</c> parameter in microseconds), error map (as gRPC status codes) and metrics (<c>protocol="grpc"</c>).
/// Keys come as metadata (<c>x-api-key</c> or <c>authorization: Bearer</c>), read like HTTP headers.
/// </summary>
public sealed class GrpcInferenceService(InferenceDataPlane plane, InferenceAccess access, ModelStore store, ModelRegistry registry)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Guard(context, () =>
        {
            access.Check(context.GetHttpContext(), null, null, inference: false);
            return Task.FromResult(new ServerLiveResponse { Live = true });
        });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Guard(context, async () =>
        {
            access.Check(context.GetHttpContext(), null, null, inference: false);
            try
            {
                await plane.ReadyAsync(null, null, keyed: true, context.CancellationToken);
                return new ServerReadyResponse { Ready = true };
            }
            catch (InferenceException ex) when (ex.Kind == InferenceErrorKind.Unavailable)
            {
                return new ServerReadyResponse { Ready = false };
            }
        });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
        Guard(context, async () =>
        {
            var http = context.GetHttpContext();
            var version = Version(request.Name, request.Version);
            access.Check(http, request.Name, version, inference: false);
            try
            {
                await plane.ReadyAsync(request.Name, version, VersionAccess.IsKeyed(http), context.CancellationToken);
                return new ModelReadyResponse { Ready = true };
            }
            catch (InferenceException ex) when (ex.Kind == InferenceErrorKind.Unavailable)
            {
                return new ModelReadyResponse { Ready = false };
            }
        });

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Guard(context, () =>
        {
            access.Check(context.GetHttpContext(), null, null, inference: false);
            var response = new ServerMetadataResponse { Name = OpenInference.ServerName, Version = OpenInference.ServerVersion };
            response.Extensions.Add(OpenInference.Extensions);
            return Task.FromResult(response);
        });

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context) =>
        Guard(context, () =>
        {
            access.Check(context.GetHttpContext(), null, null, inference: false);
            var info = KServeApi.Resolve(request.Name, Blank(request.Version), store, registry) ?? throw UnknownModel(request.Name, request.Version);
            var m = info.Metadata;
            var response = new ModelMetadataResponse { Name = request.Name, Platform = KServeApi.Platform(registry, m) };
            response.Versions.Add(store.List().Where(v => v.Name == request.Name).Select(v => v.Version.ToString(CultureInfo.InvariantCulture)));
            response.Inputs.Add(OpenInference.Inputs(m).Select(Tensor));
            response.Outputs.Add(OpenInference.Outputs(m).Select(Tensor));
            return Task.FromResult(response);
        });

    public override Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context) =>
        Guard(context, async () =>
        {
            var started = Stopwatch.GetTimestamp();
            var http = context.GetHttpContext();
            var version = Version(request.ModelName, request.ModelVersion);
            access.Check(http, request.ModelName, version, inference: true);
            plane.ShedIfFull("grpc");
            if (request.Inputs.Count != 1)
            {
                throw InferenceErrors.BadRequest($"Send exactly one input: '{OpenInference.InputName}' (FP32 [N, C, S, S]) or '{OpenInference.ImagesInputName}' (BYTES [N]).");
            }

            var raw = request.RawInputContents.Count > 0;
            if (raw && request.RawInputContents.Count != request.Inputs.Count)
            {
                throw InferenceErrors.BadRequest($"raw_input_contents holds {request.RawInputContents.Count} tensors for {request.Inputs.Count} input(s).");
            }

            var tensor = request.Inputs[0];
            var input = Input(tensor, raw ? request.RawInputContents[0] : null);
            var requested = OpenInference.Requested(request.Outputs.Select(o => new OipRequestedOutput(o.Name, raw, ClassCount(o))).ToArray(), raw);
            var timeout = InferenceDeadlines.Earliest(
                context.Deadline < DateTime.MaxValue ? context.Deadline - DateTime.UtcNow : null,
                request.Parameters.TryGetValue(InferenceDeadlines.Parameter, out var t)
                    ? InferenceDeadlines.FromMicroseconds(t.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param ? t.Int64Param : null, t.ToString())
                    : null);
            var call = OpenInference.Call("grpc", request.ModelName, version, input, plane.Limits, VersionAccess.IsKeyed(http), timeout, started, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            (call.Explain, call.ExplainClass) = OpenInference.ExplainParameters(ExplainParameters(request.Parameters));
            call.TrafficKey = http.Request.Headers[TrafficRouter.KeyHeader].FirstOrDefault(); // gRPC metadata arrives as headers
            var outcome = await plane.InferAsync(call, context.CancellationToken);

            var response = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = outcome.Version.ToString(CultureInfo.InvariantCulture), Id = request.Id };
            foreach (var output in OpenInference.Outputs(outcome, requested))
            {
                var tensorOut = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.Datatype };
                tensorOut.Shape.Add(output.Shape);
                if (output.Binary)
                {
                    response.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(output.Floats is { } f ? KServeBinary.FromFloats(f) : KServeBinary.FromStrings(output.Strings!)));
                }
                else
                {
                    tensorOut.Contents = new InferTensorContents();
                    if (output.Floats is { } floats)
                    {
                        tensorOut.Contents.Fp32Contents.Add(floats);
                    }
                    else
                    {
                        tensorOut.Contents.BytesContents.Add(output.Strings!.Select(ByteString.CopyFromUtf8));
                    }
                }

                response.Outputs.Add(tensorOut);
            }

            // Class activation maps, when asked for: FP32 [N, H, W] after the classification outputs, raw like the rest.
            if (OpenInference.CamOutput(outcome) is { } cam)
            {
                var camOut = new ModelInferResponse.Types.InferOutputTensor { Name = OpenInference.CamOutputName, Datatype = "FP32" };
                camOut.Shape.Add(cam.Shape);
                foreach (var (name, value) in cam.Parameters)
                {
                    camOut.Parameters[name] = value switch
                    {
                        string text => new InferParameter { StringParam = text },
                        int number => new InferParameter { Int64Param = number },
                        long number => new InferParameter { Int64Param = number },
                        _ => new InferParameter { StringParam = System.Text.Json.JsonSerializer.Serialize(value) },
                    };
                }

                if (raw)
                {
                    response.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(KServeBinary.FromFloats(cam.Values)));
                }
                else
                {
                    camOut.Contents = new InferTensorContents();
                    camOut.Contents.Fp32Contents.Add(cam.Values);
                }

                response.Outputs.Add(camOut);
            }

            return response;
        });

    /// <summary>The request's <c>explain</c> and <c>explain_class</c> parameters as the REST adapter reads them (strings and integers).</summary>
    private static Dictionary<string, System.Text.Json.JsonElement>? ExplainParameters(Google.Protobuf.Collections.MapField<string, InferParameter> parameters)
    {
        Dictionary<string, System.Text.Json.JsonElement>? result = null;
        foreach (var name in (string[])["explain", "explain_class"])
        {
            if (parameters.TryGetValue(name, out var p))
            {
                (result ??= [])[name] = p.ParameterChoiceCase switch
                {
                    InferParameter.ParameterChoiceOneofCase.StringParam => System.Text.Json.JsonSerializer.SerializeToElement(p.StringParam),
                    InferParameter.ParameterChoiceOneofCase.Int64Param => System.Text.Json.JsonSerializer.SerializeToElement(p.Int64Param),
                    InferParameter.ParameterChoiceOneofCase.BoolParam => System.Text.Json.JsonSerializer.SerializeToElement(p.BoolParam),
                    _ => System.Text.Json.JsonSerializer.SerializeToElement(p.ToString()),
                };
            }
        }

        return result;
    }

    public override Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context) =>
        Guard(context, async () =>
        {
            var http = context.GetHttpContext();
            _ = Version(request.ModelName, null);
            access.Check(http, request.ModelName, null, inference: false);
            await plane.ReadyAsync(request.ModelName, null, VersionAccess.IsKeyed(http), context.CancellationToken);
            return new RepositoryModelLoadResponse { ModelName = request.ModelName, IsLoaded = true };
        });

    public override Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented,
            "Versions are unloaded by activating another (POST /models/{name}/versions/{version}/activate) and by the cache of non-active versions (Serving:CachedVersions)."));

    /// <summary>The request's version as a number (null when empty); NOT_FOUND for an unknown model or version.</summary>
    private int? Version(string name, string? version)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw InferenceErrors.BadRequest("The model name is required.");
        }

        var text = Blank(version);
        if (KServeApi.Resolve(name, text, store, registry) is null)
        {
            throw UnknownModel(name, text);
        }

        return text is null ? null : int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
    }

    private static string? Blank(string? version) => string.IsNullOrEmpty(version) ? null : version;

    private static InferenceException UnknownModel(string name, string? version) =>
        new(InferenceErrorKind.NotFound, "Unknown model.", version is null ? $"Unknown model '{name}'." : $"Unknown model '{name}' version '{version}'.");

    private static ModelMetadataResponse.Types.TensorMetadata Tensor(V2TensorMetadata t)
    {
        var m = new ModelMetadataResponse.Types.TensorMetadata { Name = t.Name, Datatype = t.Datatype };
        m.Shape.Add(t.Shape);
        return m;
    }

    /// <summary>The classification extension's class count of a requested output (0: none).</summary>
    private static int ClassCount(ModelInferRequest.Types.InferRequestedOutputTensor output)
    {
        foreach (var name in OpenInference.ClassificationParameters)
        {
            if (output.Parameters.TryGetValue(name, out var p))
            {
                return p.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param && p.Int64Param is >= 0 and <= int.MaxValue
                    ? (int)p.Int64Param
                    : throw InferenceErrors.BadRequest($"Output '{output.Name}': {name} must be a non-negative int64.");
            }
        }

        return 0;
    }

    /// <summary>A typed or raw input tensor in protocol-neutral form.</summary>
    private static OipInput Input(ModelInferRequest.Types.InferInputTensor tensor, ByteString? raw)
    {
        var shape = tensor.Shape.ToArray();
        switch (tensor.Datatype)
        {
            case "FP32" when raw is not null:
                var expected = shape.Aggregate(1L, (a, d) => d < 0 ? -1 : a * d) * 4;
                if (raw.Length % 4 != 0 || (expected >= 0 && raw.Length != expected))
                {
                    throw InferenceErrors.BadRequest($"FP32 input has {raw.Length:N0} bytes of raw contents; shape [{string.Join(", ", shape)}] needs {expected:N0}.");
                }

                return new OipInput(tensor.Name, tensor.Datatype, shape, KServeBinary.Floats(raw.Span), null);
            case "FP32":
                return new OipInput(tensor.Name, tensor.Datatype, shape, tensor.Contents?.Fp32Contents.ToArray() ?? [], null);
            case "BYTES" when raw is not null:
                var elements = KServeBinary.Elements(raw.Memory, 4096)
                    ?? throw InferenceErrors.BadRequest("BYTES raw contents must be elements of a 4-byte little-endian length and that many bytes.");
                return new OipInput(tensor.Name, tensor.Datatype, shape, null, elements);
            case "BYTES":
                return new OipInput(tensor.Name, tensor.Datatype, shape, null, tensor.Contents?.BytesContents.Select(b => b.Memory).ToArray() ?? []);
            default:
                return new OipInput(tensor.Name, tensor.Datatype, shape, null, null); // refused by name and datatype next
        }
    }

    /// <summary>The one error map, as gRPC status codes (with <c>retry-after</c> in the trailers when there is one).</summary>
    private static async Task<T> Guard<T>(ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (InferenceException ex)
        {
            var trailers = new Metadata();
            if (ex.RetryAfter is { } wait)
            {
                trailers.Add("retry-after", InferenceErrors.RetryAfterSeconds(wait));
            }

            throw new RpcException(new Status(InferenceErrors.GrpcStatus(ex.Kind), ex.Message), trailers);
        }
    }
}
