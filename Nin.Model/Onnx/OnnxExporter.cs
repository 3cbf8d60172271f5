using System.Text.Json;
using Google.Protobuf;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Onnx;

namespace Nin.Model.Onnx;

/// <summary>
/// Writes a NiN as an ONNX model (IR 8, opset 17) with the classes generated from ONNX's own <c>onnx.proto</c>: input
/// <c>input</c> float32 [N, C, S, S] (preprocessed: pixels scaled to [0, 1] at the model's image size, N dynamic),
/// output <c>probabilities</c> float32 [N, K] (softmax), and <c>metadata_props</c> carrying the class names, the
/// preprocessing and the recipe as JSON. The graph follows the architecture's layer description (<see cref="NetworkArchitecture.Layers"/>);
/// dropout, an identity when serving, is left out. <see cref="Int8Quantizer"/> rewrites the file for int8.
/// </summary>
public static class OnnxExporter
{
    public const string InputName = "input";
    public const string OutputName = "probabilities";
    public const int Opset = 17;
    public const long IrVersion = 8;

    /// <summary>
    /// A network of any registered architecture, by its own layer description; BatchNorm (<c>nin-bn</c>) is folded into the
    /// convolutions. An architecture that is not registered is refused (<see cref="ArgumentException"/>).
    /// </summary>
    public static byte[] Export(ImageClassifier network, ModelMetadata metadata) =>
        Export(NetworkArchitectures.Get(network.Architecture).Layers(network.InputChannels, network.Classes), NinWeights.Read(network), metadata);

    public static byte[] Export(IReadOnlyList<NinLayer> layers, IReadOnlyList<NamedTensor> weights, ModelMetadata metadata) =>
        Build(layers, weights, metadata).ToByteArray();

    /// <summary>The fp32 model as ONNX messages (for the quantizer, which rewrites it).</summary>
    internal static ModelProto Build(IReadOnlyList<NinLayer> layers, IReadOnlyList<NamedTensor> weights, ModelMetadata metadata)
    {
        var byName = weights.ToDictionary(w => w.Name, StringComparer.Ordinal);
        var graph = new GraphProto { Name = $"{metadata.Name}_v{metadata.Version}" };
        var current = InputName;
        var index = 0;

        void Add(string op, IEnumerable<string> inputs, params AttributeProto[] attributes)
        {
            var output = $"{op.ToLowerInvariant()}_{index++}";
            graph.Node.Add(OnnxProto.Node(op, inputs, output, attributes));
            current = output;
        }

        foreach (var layer in layers)
        {
            switch (layer)
            {
                case ConvLayer conv:
                    Add("Conv", [current, $"{conv.Key}.weight", $"{conv.Key}.bias"],
                        OnnxProto.Ints("kernel_shape", conv.Kernel, conv.Kernel),
                        OnnxProto.Ints("strides", conv.Stride, conv.Stride),
                        OnnxProto.Ints("pads", conv.Padding, conv.Padding, conv.Padding, conv.Padding));
                    break;
                case ReluLayer:
                    Add("Relu", [current]);
                    break;
                case MaxPoolLayer pool:
                    Add("MaxPool", [current], OnnxProto.Ints("kernel_shape", pool.Kernel, pool.Kernel), OnnxProto.Ints("strides", pool.Stride, pool.Stride));
                    break;
                case DropoutLayer:
                    break;
                case GlobalAveragePoolLayer:
                    Add("GlobalAveragePool", [current]);
                    break;
                case FlattenLayer:
                    Add("Flatten", [current], OnnxProto.Int("axis", 1));
                    break;
                default:
                    throw new NotSupportedException($"The ONNX exporter has no mapping for {layer.GetType().Name}.");
            }
        }

        graph.Node.Add(OnnxProto.Node("Softmax", [current], OutputName, OnnxProto.Int("axis", 1)));

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

            graph.Initializer.Add(OnnxProto.Floats(key, w.Shape, w.Values));
        }

        var s = metadata.ImageSize;
        graph.Input.Add(OnnxProto.Value(InputName, TensorProto.Types.DataType.Float, [null, metadata.InputChannels, s, s]));
        graph.Output.Add(OnnxProto.Value(OutputName, TensorProto.Types.DataType.Float, [null, metadata.ClassNames.Count]));

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "nin",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "",
            Domain = "nin.model",
            ModelVersion = metadata.Version,
            DocString = $"'{metadata.Architecture}' network '{metadata.Name}' version {metadata.Version}: input float32 [N, {metadata.InputChannels}, {s}, {s}] scaled to [0, 1]; output softmax probabilities [N, {metadata.ClassNames.Count}].",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in MetadataProps(metadata))
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }

        return model;
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
}
