using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Nin.Model.Onnx;

/// <summary>The observed range of one activation tensor over the calibration images.</summary>
public readonly record struct TensorRange(float Min, float Max);

/// <summary>
/// Static int8 quantization of an fp32 ONNX graph in QDQ form (QuantizeLinear/DequantizeLinear pairs, ONNX's own
/// operators), only where ONNX Runtime fuses the pattern into integer kernels:
/// <list type="bullet">
/// <item>every <c>Conv</c> whose weights are initializers: int8 weights, symmetric per output channel (zero point 0,
/// scale max|w|/127); int32 bias at scale input·weight (what <c>QLinearConv</c> takes); its input activation and its
/// output (after a following <c>Relu</c>, which ONNX Runtime then folds into the quantization) in uint8, asymmetric,
/// from the calibrated range widened to hold 0;</item>
/// <item><c>MaxPool</c> between two quantized tensors keeps its input's scale, so it runs on the uint8 values.</item>
/// </list>
/// Everything else (global average pooling, softmax) stays fp32 behind a DequantizeLinear. The graph is walked
/// generically (producers and consumers), not as a fixed NiN, so any architecture the exporter writes goes through.
/// </summary>
public static class Int8Quantizer
{
    private const string QuantizedSuffix = "_quantized";
    private const string DequantizedSuffix = "_dequantized";

    /// <summary>The activation tensors whose ranges <see cref="Quantize"/> needs, in graph order.</summary>
    public static IReadOnlyList<string> TensorsToCalibrate(byte[] fp32Model) => Plan(ModelProto.Parser.ParseFrom(fp32Model)).Calibrated;

    /// <summary>
    /// The QDQ model of <paramref name="fp32Model"/> with activation scales from <paramref name="ranges"/>;
    /// <paramref name="metadataProps"/> are added to (or replace) its metadata_props.
    /// </summary>
    public static byte[] Quantize(byte[] fp32Model, IReadOnlyDictionary<string, TensorRange> ranges, IReadOnlyDictionary<string, string>? metadataProps = null)
    {
        var model = ModelProto.Parser.ParseFrom(fp32Model);
        Rewrite(model, ranges);
        foreach (var (key, value) in metadataProps ?? new Dictionary<string, string>())
        {
            if (model.MetadataProps.FirstOrDefault(p => p.Key == key) is { } existing)
            {
                existing.Value = value;
            }
            else
            {
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            }
        }

        return model.ToByteArray();
    }

    private sealed record QuantPlan(
        IReadOnlyList<NodeProto> Convolutions,
        IReadOnlyList<string> Calibrated,
        IReadOnlyDictionary<string, string> SharesScaleWith);

    /// <summary>Which convolutions are quantized and which tensors get a QDQ pair (and from which range).</summary>
    private static QuantPlan Plan(ModelProto model)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var consumers = Consumers(graph);
        var convolutions = graph.Node
            .Where(n => n.OpType == "Conv" && n.Input.Count >= 2 && initializers.TryGetValue(n.Input[1], out var w) && w.Dims.Count == 4
                && (n.Input.Count < 3 || initializers.ContainsKey(n.Input[2])))
            .ToList();
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);

        var calibrated = new List<string>();
        void Calibrate(string tensor)
        {
            if (!calibrated.Contains(tensor))
            {
                calibrated.Add(tensor);
            }
        }

        foreach (var conv in convolutions)
        {
            Calibrate(conv.Input[0]);

            // The convolution's output as the next node sees it: after a Relu that only it feeds (ONNX Runtime removes
            // that Relu when a QuantizeLinear with zero point 0 follows it, and the Conv becomes a QLinearConv).
            var output = conv.Output[0];
            if (consumers[output] is [{ OpType: "Relu" } relu] && !outputs.Contains(output))
            {
                output = relu.Output[0];
            }

            if (!outputs.Contains(output))
            {
                Calibrate(output);
            }
        }

        // MaxPool between quantized tensors: its output shares its input's scale (ONNX Runtime drops the QDQ pair
        // around it and pools the uint8 values). Repeated until nothing changes, so chains of them are covered.
        var shares = new Dictionary<string, string>(StringComparer.Ordinal);
        bool changed;
        do
        {
            changed = false;
            foreach (var pool in graph.Node.Where(n => n.OpType == "MaxPool" && n.Output.Count == 1))
            {
                var input = pool.Input[0];
                var output = pool.Output[0];
                if ((calibrated.Contains(input) || shares.ContainsKey(input)) && !shares.ContainsKey(output) && !outputs.Contains(output))
                {
                    shares[output] = shares.TryGetValue(input, out var root) ? root : input;
                    calibrated.Remove(output);
                    changed = true;
                }
            }
        }
        while (changed);

        return new QuantPlan(convolutions, calibrated, shares);
    }

    private static void Rewrite(ModelProto model, IReadOnlyDictionary<string, TensorRange> ranges)
    {
        var graph = model.Graph;
        var plan = Plan(model);
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);

        // uint8 activation parameters of every tensor that gets a QDQ pair.
        var activation = new Dictionary<string, (float Scale, byte ZeroPoint)>(StringComparer.Ordinal);
        foreach (var tensor in plan.Calibrated)
        {
            if (!ranges.TryGetValue(tensor, out var range))
            {
                throw new ArgumentException($"No calibrated range for tensor '{tensor}'.", nameof(ranges));
            }

            activation[tensor] = ActivationParameters(range);
        }

        foreach (var (tensor, root) in plan.SharesScaleWith)
        {
            activation[tensor] = activation[root];
        }

        var head = new List<NodeProto>();
        var newInitializers = new List<TensorProto>();

        // Weights and biases: int8 / int32 initializers behind a per-channel DequantizeLinear; the float ones go.
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var conv in plan.Convolutions)
        {
            var weight = initializers[conv.Input[1]];
            var dims = weight.Dims.ToArray();
            var w = OnnxProto.Values<float>(weight);
            var outChannels = (int)dims[0];
            var perChannel = w.Length / outChannels;
            var weightScales = new float[outChannels];
            var quantizedWeights = new sbyte[w.Length];
            for (var o = 0; o < outChannels; o++)
            {
                var span = w.AsSpan(o * perChannel, perChannel);
                var max = 0f;
                foreach (var v in span)
                {
                    max = Math.Max(max, Math.Abs(v));
                }

                var scale = max > 0 ? max / 127f : 1f;
                weightScales[o] = scale;
                for (var i = 0; i < perChannel; i++)
                {
                    quantizedWeights[(o * perChannel) + i] = (sbyte)Math.Clamp(MathF.Round(span[i] / scale, MidpointRounding.ToEven), -127, 127);
                }
            }

            var wName = conv.Input[1];
            newInitializers.Add(OnnxProto.Tensor<sbyte>(wName + QuantizedSuffix, DataType.Int8, dims, quantizedWeights));
            newInitializers.Add(OnnxProto.Floats(wName + "_scale", [outChannels], weightScales));
            newInitializers.Add(OnnxProto.Tensor<sbyte>(wName + "_zero_point", DataType.Int8, [outChannels], new sbyte[outChannels]));
            head.Add(DequantizeNode(wName + QuantizedSuffix, wName + "_scale", wName + "_zero_point", wName + DequantizedSuffix, axis: 0));
            conv.Input[1] = wName + DequantizedSuffix;
            dropped.Add(wName);

            if (conv.Input.Count >= 3 && conv.Input[2].Length > 0)
            {
                var bName = conv.Input[2];
                var b = OnnxProto.Values<float>(initializers[bName]);
                var inputScale = activation[conv.Input[0]].Scale;
                var biasScales = new float[outChannels];
                var quantizedBias = new int[outChannels];
                for (var o = 0; o < outChannels; o++)
                {
                    biasScales[o] = inputScale * weightScales[o];
                    quantizedBias[o] = (int)Math.Clamp(Math.Round(b[o] / (double)biasScales[o], MidpointRounding.ToEven), int.MinValue + 1, int.MaxValue);
                }

                newInitializers.Add(OnnxProto.Tensor<int>(bName + QuantizedSuffix, DataType.Int32, [outChannels], quantizedBias));
                newInitializers.Add(OnnxProto.Floats(bName + "_scale", [outChannels], biasScales));
                newInitializers.Add(OnnxProto.Tensor<int>(bName + "_zero_point", DataType.Int32, [outChannels], new int[outChannels]));
                head.Add(DequantizeNode(bName + QuantizedSuffix, bName + "_scale", bName + "_zero_point", bName + DequantizedSuffix, axis: 0));
                conv.Input[2] = bName + DequantizedSuffix;
                dropped.Add(bName);
            }
        }

        // Activations: a QuantizeLinear → DequantizeLinear pair right after the tensor is made, and every reader of it
        // reads the dequantized copy.
        foreach (var (tensor, (scale, zeroPoint)) in activation)
        {
            newInitializers.Add(OnnxProto.Scalar(tensor + "_scale", DataType.Float, scale));
            newInitializers.Add(OnnxProto.Scalar(tensor + "_zero_point", DataType.Uint8, zeroPoint));
        }

        List<NodeProto> Pair(string tensor) =>
        [
            OnnxProto.Node("QuantizeLinear", [tensor, tensor + "_scale", tensor + "_zero_point"], tensor + QuantizedSuffix),
            DequantizeNode(tensor + QuantizedSuffix, tensor + "_scale", tensor + "_zero_point", tensor + DequantizedSuffix),
        ];

        var nodes = new List<NodeProto>(head);
        foreach (var input in graph.Input.Where(i => activation.ContainsKey(i.Name)))
        {
            nodes.AddRange(Pair(input.Name));
        }

        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                if (activation.ContainsKey(node.Input[i]))
                {
                    node.Input[i] += DequantizedSuffix;
                }
            }

            nodes.Add(node);
            foreach (var output in node.Output.Where(activation.ContainsKey))
            {
                nodes.AddRange(Pair(output));
            }
        }

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        var kept = graph.Initializer.Where(t => !dropped.Contains(t.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.AddRange(kept.Concat(newInitializers));
        graph.DocString = "Static int8 QDQ quantization by Nin: int8 symmetric per-channel convolution weights, int32 biases, uint8 asymmetric activations calibrated by min/max.";
        model.DocString += " Quantized: int8 convolutions (QDQ), activation ranges calibrated on training images.";
    }

    /// <summary>
    /// SHA-256 of a model's graph alone (nodes, initializers, inputs, outputs): what an accuracy measured on the model
    /// belongs to, whatever its producer version or metadata say.
    /// </summary>
    public static string GraphSha256(byte[] model) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(ModelProto.Parser.ParseFrom(model).Graph.ToByteArray()));

    /// <summary>uint8 scale and zero point of a range, widened to hold 0 (so zero padding and ReLU's 0 are exact).</summary>
    public static (float Scale, byte ZeroPoint) ActivationParameters(TensorRange range)
    {
        var min = Math.Min(range.Min, 0f);
        var max = Math.Max(range.Max, 0f);
        if (!float.IsFinite(min) || !float.IsFinite(max))
        {
            throw new ArgumentException($"A calibrated range is not finite ({range.Min}..{range.Max}).", nameof(range));
        }

        if (max - min <= 0)
        {
            return (1f, 0);
        }

        var scale = (max - min) / 255f;
        var zeroPoint = (byte)Math.Clamp(MathF.Round(-min / scale, MidpointRounding.ToEven), 0, 255);
        return (scale, zeroPoint);
    }

    private static NodeProto DequantizeNode(string input, string scale, string zeroPoint, string output, int? axis = null) =>
        axis is { } a
            ? OnnxProto.Node("DequantizeLinear", [input, scale, zeroPoint], output, OnnxProto.Int("axis", a))
            : OnnxProto.Node("DequantizeLinear", [input, scale, zeroPoint], output);

    private static Dictionary<string, List<NodeProto>> Consumers(GraphProto graph)
    {
        var consumers = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var tensor in node.Output)
            {
                consumers.TryAdd(tensor, []);
            }
        }

        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input)
            {
                if (consumers.TryGetValue(input, out var list))
                {
                    list.Add(node);
                }
            }
        }

        return consumers;
    }
}
