using System.Globalization;
using Nin.Model.Checkpoints;

namespace Nin.Api.Serving;

/// <summary>An input tensor as an Open Inference Protocol adapter received it: FP32 values or BYTES elements.</summary>
public sealed record OipInput(string Name, string Datatype, long[] Shape, float[]? Floats, IReadOnlyList<ReadOnlyMemory<byte>>? Elements);

/// <summary>An output asked for: its name, whether it goes as binary data, and the classification extension's class count (0: off).</summary>
public sealed record OipRequestedOutput(string Name, bool Binary, int ClassCount);

/// <summary>An output tensor to write: FP32 values or BYTES strings.</summary>
public sealed record OipOutput(string Name, string Datatype, long[] Shape, float[]? Floats, string[]? Strings, bool Binary);

/// <summary>
/// What the Open Inference Protocol's adapters (REST <c>/v2</c> and gRPC) share on top of the data plane: the model's
/// tensors and their names, checking a received input, and making the outputs (with the classification extension).
/// </summary>
public static class OpenInference
{
    public const string InputName = "input";
    public const string ImagesInputName = "images";
    public const string ProbabilitiesOutput = "probabilities";
    public const string LabelOutput = "label";
    public const string ServerName = "nin";

    /// <summary>The classification extension's output parameter (Triton's name), and KServe-style <c>class_count</c>.</summary>
    public static readonly string[] ClassificationParameters = ["classification", "class_count"];

    /// <summary>Largest magnitude of an FP32 input value: far beyond [0, 1], yet far from what overflows the network.</summary>
    public const float MaxInputMagnitude = 1e6f;

    /// <summary>The protocol extensions served.</summary>
    public static readonly IReadOnlyList<string> Extensions = ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"];

    public static string ServerVersion => typeof(OpenInference).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>The model's inputs: a preprocessed FP32 tensor or encoded image files.</summary>
    public static IReadOnlyList<V2TensorMetadata> Inputs(ModelMetadata m) =>
        [new V2TensorMetadata(InputName, "FP32", [-1, m.InputChannels, m.ImageSize, m.ImageSize]), new V2TensorMetadata(ImagesInputName, "BYTES", [-1])];

    public static IReadOnlyList<V2TensorMetadata> Outputs(ModelMetadata m) =>
        [new V2TensorMetadata(ProbabilitiesOutput, "FP32", [-1, m.ClassNames.Count]), new V2TensorMetadata(LabelOutput, "BYTES", [-1])];

    /// <summary>The data-plane call for one received input (names, types, shapes and values checked: 400s).</summary>
    public static InferenceCall Call(string protocol, string model, int? version, OipInput input, ServingOptions limits, bool keyed, TimeSpan? timeout, long started, double readMs)
    {
        if (input.Name is not (InputName or ImagesInputName))
        {
            throw InferenceErrors.BadRequest($"'{input.Name}' is not an input of this model: it takes '{InputName}' (FP32 [N, C, S, S]) or '{ImagesInputName}' (BYTES [N]).");
        }

        var wanted = input.Name == InputName ? "FP32" : "BYTES";
        if (input.Datatype != wanted)
        {
            throw InferenceErrors.BadRequest($"Input '{input.Name}' is {wanted}; got datatype '{input.Datatype}'.");
        }

        if (wanted == "FP32")
        {
            var values = input.Floats ?? throw InferenceErrors.BadRequest($"Input '{InputName}' holds no FP32 values.");
            for (var i = 0; i < values.Length; i++)
            {
                if (!float.IsFinite(values[i]) || Math.Abs(values[i]) > MaxInputMagnitude)
                {
                    throw InferenceErrors.BadRequest(OutOfRange(i, values[i]));
                }
            }

            return new InferenceCall
            {
                Protocol = protocol, Model = model, Version = version, Tensor = new FloatTensor(input.Shape, values),
                Keyed = keyed, Timeout = timeout, Started = started, ReadMilliseconds = readMs,
            };
        }

        var elements = input.Elements ?? [];
        if (elements.Count < 1 || elements.Count > limits.MaxImagesPerRequest)
        {
            throw InferenceErrors.BadRequest($"BYTES input must hold 1 to {limits.MaxImagesPerRequest} images; got {elements.Count}.");
        }

        // [N], or [N, 1] as Triton's clients send a batch of one string each.
        if (!(input.Shape.Length == 1 && input.Shape[0] == elements.Count) && !(input.Shape.Length == 2 && input.Shape[0] == elements.Count && input.Shape[1] == 1))
        {
            throw InferenceErrors.BadRequest($"BYTES input holds {elements.Count} images; its shape must be [{elements.Count}], got [{string.Join(", ", input.Shape)}].");
        }

        return new InferenceCall
        {
            Protocol = protocol, Model = model, Version = version, Images = elements.Select(e => new EncodedImage(null, e)).ToArray(),
            Keyed = keyed, Timeout = timeout, Started = started, ReadMilliseconds = readMs,
        };
    }

    /// <summary>The outputs asked for, in order; both plain when none is named.</summary>
    public static IReadOnlyList<OipRequestedOutput> Requested(IReadOnlyList<OipRequestedOutput>? outputs, bool allBinary)
    {
        if (outputs is null || outputs.Count == 0)
        {
            return [new(ProbabilitiesOutput, allBinary, 0), new(LabelOutput, allBinary, 0)];
        }

        var seen = new HashSet<string>();
        foreach (var output in outputs)
        {
            if (output.Name is not (ProbabilitiesOutput or LabelOutput))
            {
                throw InferenceErrors.BadRequest($"Unknown output '{output.Name}': this model has '{ProbabilitiesOutput}' and '{LabelOutput}'.");
            }

            if (!seen.Add(output.Name))
            {
                throw InferenceErrors.BadRequest($"Output '{output.Name}' is requested twice.");
            }

            if (output.ClassCount < 0)
            {
                throw InferenceErrors.BadRequest($"Output '{output.Name}': the class count must be a positive integer; got {output.ClassCount}.");
            }
        }

        return outputs;
    }

    /// <summary>
    /// The output tensors of an outcome. Probabilities that are not finite (values that overflow the network) are a 400.
    /// With the classification extension an output is BYTES [N, k] of <c>"probability:index:label"</c>, most probable first.
    /// </summary>
    public static IReadOnlyList<OipOutput> Outputs(InferenceOutcome outcome, IReadOnlyList<OipRequestedOutput> requested)
    {
        var results = outcome.Results;
        for (var i = 0; i < results.Length; i++)
        {
            if (!Array.TrueForAll(results[i].Probabilities, float.IsFinite))
            {
                throw InferenceErrors.BadRequest($"Input {i} gives non-finite probabilities (NaN or infinity): the values overflow the network. Send pixels scaled to [0, 1], as the model was trained on.");
            }
        }

        var classes = outcome.Metadata.ClassNames;
        var n = results.Length;
        var tensors = new List<OipOutput>(requested.Count);
        foreach (var output in requested)
        {
            if (output.ClassCount > 0)
            {
                var k = Math.Min(output.ClassCount, classes.Count);
                var strings = results.SelectMany(r => PredictApi.Top(r.Probabilities, classes, k)
                    .Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Probability:G6}:{s.Index}:{s.Label}"))).ToArray();
                tensors.Add(new OipOutput(output.Name, "BYTES", [n, k], null, strings, output.Binary));
            }
            else if (output.Name == ProbabilitiesOutput)
            {
                var flat = new float[n * classes.Count];
                for (var i = 0; i < n; i++)
                {
                    results[i].Probabilities.CopyTo(flat, i * classes.Count);
                }

                tensors.Add(new OipOutput(output.Name, "FP32", [n, classes.Count], flat, null, output.Binary));
            }
            else
            {
                tensors.Add(new OipOutput(output.Name, "BYTES", [n], null, results.Select(r => classes[ArgMax(r.Probabilities)]).ToArray(), output.Binary));
            }
        }

        return tensors;
    }

    /// <summary>The output that carries class activation maps when a request asks for them (<c>parameters: { "explain": "cam" }</c>).</summary>
    public const string CamOutputName = "cam";

    /// <summary>
    /// <c>explain</c> (<c>"cam"</c> or absent) and <c>explain_class</c> (a class index or name) from a request's parameters;
    /// anything else is a 400.
    /// </summary>
    public static (bool Explain, string? Class) ExplainParameters(IReadOnlyDictionary<string, System.Text.Json.JsonElement>? parameters)
    {
        string? explain = null, cls = null;
        if (parameters?.TryGetValue("explain", out var e) == true)
        {
            explain = e.ValueKind == System.Text.Json.JsonValueKind.String && string.Equals(e.GetString(), "cam", StringComparison.OrdinalIgnoreCase)
                ? "cam"
                : throw InferenceErrors.BadRequest($"The 'explain' parameter must be \"cam\"; got {e.GetRawText()}.");
        }

        if (parameters?.TryGetValue("explain_class", out var c) == true)
        {
            cls = c.ValueKind switch
            {
                System.Text.Json.JsonValueKind.String => c.GetString(),
                System.Text.Json.JsonValueKind.Number when c.TryGetInt32(out var i) && i >= 0 => i.ToString(CultureInfo.InvariantCulture),
                _ => throw InferenceErrors.BadRequest($"The 'explain_class' parameter must be a class index or name; got {c.GetRawText()}."),
            };
            if (explain is null)
            {
                throw InferenceErrors.BadRequest("The 'explain_class' parameter needs \"explain\": \"cam\".");
            }
        }

        return (explain is not null, cls);
    }

    /// <summary>
    /// The maps of an outcome that has them as one FP32 tensor [N, H, W] (values 0–1), with the method, stage and
    /// explained classes as the output's parameters; null when none were asked for.
    /// </summary>
    public static (long[] Shape, float[] Values, Dictionary<string, object> Parameters)? CamOutput(InferenceOutcome outcome)
    {
        if (outcome.Explanations is not { Length: > 0 } maps)
        {
            return null;
        }

        int h = maps[0].Height, w = maps[0].Width;
        var values = new float[maps.Length * h * w];
        for (var i = 0; i < maps.Length; i++)
        {
            maps[i].Values.CopyTo(values, i * h * w);
        }

        var parameters = new Dictionary<string, object>
        {
            ["method"] = maps[0].Method,
            ["layer"] = maps[0].Layer,
            ["classes"] = string.Join(",", maps.Select(m => m.Index.ToString(CultureInfo.InvariantCulture))),
        };
        return ([maps.Length, h, w], values, parameters);
    }

    /// <summary>The index of the largest value (the first of equals): an image's predicted class.</summary>
    internal static int ArgMax(float[] values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    private static string OutOfRange(int index, float value) => float.IsFinite(value)
        ? $"FP32 input element {index} is {value:G3}; values must lie within ±{MaxInputMagnitude:G0} (the model takes pixels scaled to [0, 1]), or the network overflows."
        : $"FP32 input element {index} is not a finite number.";
}
