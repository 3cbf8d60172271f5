using System.Buffers.Binary;

namespace Nin.Model.Interop;

/// <summary>Little-endian floating-point elements as both importers meet them (safetensors' dtype names), widened or narrowed to float32.</summary>
internal static class ElementDecoder
{
    /// <summary>Bytes per element of a dtype, or null when it is not one read (F32, F64, F16, BF16).</summary>
    public static int? Size(string dtype) => dtype switch
    {
        "F32" => 4,
        "F64" => 8,
        "F16" or "BF16" => 2,
        _ => null,
    };

    public static float[] ToFloats(ReadOnlySpan<byte> bytes, string dtype)
    {
        var size = Size(dtype) ?? throw new ArgumentException($"Unsupported dtype {dtype}.", nameof(dtype));
        var values = new float[bytes.Length / size];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = Read(bytes.Slice(i * size, size), dtype);
        }

        return values;
    }

    /// <summary>One element.</summary>
    public static float Read(ReadOnlySpan<byte> b, string dtype) => dtype switch
    {
        "F32" => BinaryPrimitives.ReadSingleLittleEndian(b),
        "F64" => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
        "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(b),
        _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
    };
}
