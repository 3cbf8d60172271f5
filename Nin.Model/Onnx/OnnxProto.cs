using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Nin.Model.Onnx;

/// <summary>
/// Small constructors for the ONNX messages (classes generated from <c>Proto/onnx.proto</c>) that the exporter and the
/// int8 quantizer put in a graph: nodes, attributes, initializers and typed values.
/// </summary>
internal static class OnnxProto
{
    public static NodeProto Node(string op, IEnumerable<string> inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        return node;
    }

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>An initializer of <paramref name="values"/> (little-endian raw data, as ONNX stores it).</summary>
    public static TensorProto Tensor<T>(string name, TensorProto.Types.DataType type, long[] dims, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this writer stores the host's numbers as they are.");
        }

        if (dims.Aggregate(1L, (a, d) => a * d) != values.Length)
        {
            throw new ArgumentException($"'{name}': {values.Length} values do not fill [{string.Join(", ", dims)}].", nameof(values));
        }

        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values)) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    public static TensorProto Floats(string name, long[] dims, ReadOnlySpan<float> values) =>
        Tensor(name, TensorProto.Types.DataType.Float, dims, values);

    /// <summary>A scalar (rank 0) initializer.</summary>
    public static TensorProto Scalar<T>(string name, TensorProto.Types.DataType type, T value)
        where T : unmanaged => Tensor(name, type, [], [value]);

    /// <summary>The values of an initializer stored as raw data.</summary>
    public static T[] Values<T>(TensorProto tensor)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(tensor.RawData.Span).ToArray();

    /// <summary>A tensor value of <paramref name="type"/>; a null dimension is the dynamic batch <c>N</c>; no dims: shape left open.</summary>
    public static ValueInfoProto Value(string name, TensorProto.Types.DataType type, long?[]? dims = null)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (var d in dims)
            {
                tensorType.Shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = "N" });
            }
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }
}
