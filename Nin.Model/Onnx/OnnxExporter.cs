using System.Runtime.InteropServices;
using System.Text.Json;
using Nin.Model.Checkpoints;
using Nin.Model.Network;

namespace Nin.Model.Onnx;

/// <summary>
/// Writes a NiN as an ONNX model (IR 8, opset 17) with no Python and no generated code: input <c>input</c>
/// float32 [N, C, S, S] (preprocessed: pixels scaled to [0, 1] at the model's image size, N dynamic),
/// output <c>probabilities</c> float32 [N, K] (softmax), and <c>metadata_props</c> carrying the class names,
/// the preprocessing and the recipe as JSON. The graph follows the architecture's layer description
/// (<see cref="NinLayers"/>); dropout, an identity when serving, is left out.
/// </summary>
public static class OnnxExporter
{
    public const string InputName = "input";
    public const string OutputName = "probabilities";
    public const int Opset = 17;
    public const long IrVersion = 8;

    // onnx.proto field numbers and enums used below.
    private const int FloatType = 1;
    private const int AttrInt = 2;
    private const int AttrInts = 7;

    /// <summary>A network of any registered architecture; BatchNorm (<c>nin-bn</c>) is folded into the convolutions.</summary>
    public static byte[] Export(ImageClassifier network, ModelMetadata metadata) =>
        Export(NinLayers.For(network.Architecture, network.InputChannels, network.Classes), NinWeights.Read(network), metadata);

    public static byte[] Export(IReadOnlyList<NinLayer> layers, IReadOnlyList<NamedTensor> weights, ModelMetadata metadata)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this exporter writes the host's floats as they are.");
        }

        var byName = weights.ToDictionary(w => w.Name, StringComparer.Ordinal);
        var graph = new ProtoWriter();
        var current = InputName;
        var index = 0;

        string Next(string op) => $"{op.ToLowerInvariant()}_{index++}";

        foreach (var layer in layers)
        {
            switch (layer)
            {
                case ConvLayer conv:
                {
                    var output = Next("conv");
                    graph.Message(1, Node("Conv", [current, $"{conv.Key}.weight", $"{conv.Key}.bias"], output,
                        IntsAttribute("kernel_shape", conv.Kernel, conv.Kernel),
                        IntsAttribute("strides", conv.Stride, conv.Stride),
                        IntsAttribute("pads", conv.Padding, conv.Padding, conv.Padding, conv.Padding)));
                    current = output;
                    break;
                }

                case ReluLayer:
                {
                    var output = Next("relu");
                    graph.Message(1, Node("Relu", [current], output));
                    current = output;
                    break;
                }

                case MaxPoolLayer pool:
                {
                    var output = Next("maxpool");
                    graph.Message(1, Node("MaxPool", [current], output,
                        IntsAttribute("kernel_shape", pool.Kernel, pool.Kernel),
                        IntsAttribute("strides", pool.Stride, pool.Stride)));
                    current = output;
                    break;
                }

                case DropoutLayer:
                    break;

                case GlobalAveragePoolLayer:
                {
                    var output = Next("gap");
                    graph.Message(1, Node("GlobalAveragePool", [current], output));
                    current = output;
                    break;
                }

                case FlattenLayer:
                {
                    var output = Next("flatten");
                    graph.Message(1, Node("Flatten", [current], output, IntAttribute("axis", 1)));
                    current = output;
                    break;
                }

                default:
                    throw new NotSupportedException($"The ONNX exporter has no mapping for {layer.GetType().Name}.");
            }
        }

        graph.Message(1, Node("Softmax", [current], OutputName, IntAttribute("axis", 1)));
        graph.String(2, $"{metadata.Name}_v{metadata.Version}");

        foreach (var (key, _, shape) in NinLayers.Parameters(layers))
        {
            if (!byName.TryGetValue(key, out var w))
            {
                throw new ArgumentException($"No weights named '{key}'.", nameof(weights));
            }

            if (!w.Shape.SequenceEqual(shape))
            {
                throw new ArgumentException($"'{key}' has shape [{string.Join(", ", w.Shape)}], not [{string.Join(", ", shape)}].", nameof(weights));
            }

            graph.Message(5, new ProtoWriter()
                .Ints(1, w.Shape)
                .Int(2, FloatType)
                .String(8, key)
                .Bytes(9, MemoryMarshal.AsBytes(w.Values.AsSpan())));
        }

        var s = metadata.ImageSize;
        graph.Message(11, ValueInfo(InputName, [null, metadata.InputChannels, s, s]));
        graph.Message(12, ValueInfo(OutputName, [null, metadata.ClassNames.Count]));

        var model = new ProtoWriter()
            .Int(1, IrVersion)
            .String(2, "nin")
            .String(3, typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "")
            .String(4, "nin.model")
            .Int(5, metadata.Version)
            .String(6, $"Network in Network (d2l) '{metadata.Name}' version {metadata.Version}: input float32 [N, {metadata.InputChannels}, {s}, {s}] scaled to [0, 1]; output softmax probabilities [N, {metadata.ClassNames.Count}].")
            .Message(7, graph)
            .Message(8, new ProtoWriter().String(1, "").Int(2, Opset));
        foreach (var (key, value) in MetadataProps(metadata))
        {
            model.Message(14, new ProtoWriter().String(1, key).String(2, value));
        }

        return model.ToArray();
    }

    /// <summary>The model's metadata_props: what a consumer needs to feed it and read its output.</summary>
    public static IReadOnlyList<(string Key, string Value)> MetadataProps(ModelMetadata m)
    {
        var json = ModelMetadata.JsonOptions;
        var compact = new JsonSerializerOptions(json) { WriteIndented = false };
        return
        [
            ("name", m.Name),
            ("version", m.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("architecture", m.Architecture),
            ("classes", JsonSerializer.Serialize(m.ClassNames, compact)),
            ("image_size", m.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("preprocessing", JsonSerializer.Serialize(m.Preprocessing, compact)),
            ("recipe", m.Recipe is null ? "null" : JsonSerializer.Serialize(m.Recipe, compact)),
            ("weights_sha256", m.WeightsSha256),
        ];
    }

    private static ProtoWriter Node(string op, string[] inputs, string output, params ProtoWriter[] attributes)
    {
        var node = new ProtoWriter();
        foreach (var input in inputs)
        {
            node.String(1, input);
        }

        node.String(2, output).String(3, output).String(4, op);
        foreach (var attribute in attributes)
        {
            node.Message(5, attribute);
        }

        return node;
    }

    private static ProtoWriter IntsAttribute(string name, params long[] values) =>
        new ProtoWriter().String(1, name).Ints(8, values).Int(20, AttrInts);

    private static ProtoWriter IntAttribute(string name, long value) =>
        new ProtoWriter().String(1, name).Int(3, value).Int(20, AttrInt);

    /// <summary>A float tensor's ValueInfoProto; a null dimension is the dynamic batch <c>N</c>.</summary>
    private static ProtoWriter ValueInfo(string name, long?[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims)
        {
            shape.Message(1, d is { } v ? new ProtoWriter().Int(1, v) : new ProtoWriter().String(2, "N"));
        }

        var tensorType = new ProtoWriter().Int(1, FloatType).Message(2, shape);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }
}
