using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nin.Model.Network;

namespace Nin.Model.Interop;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each tensor
/// name to its dtype, shape and byte range, then the raw little-endian data. F32 is written; F32, F64, F16 and BF16 are read.
/// </summary>
public static class Safetensors
{
    private const long MaxHeaderBytes = 16 * 1024 * 1024;

    public static void Write(IReadOnlyList<NamedTensor> tensors, Stream output, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata)
            {
                meta[k] = v;
            }

            header["__metadata__"] = meta;
        }

        long offset = 0;
        foreach (var t in tensors)
        {
            var bytes = (long)t.Values.Length * 4;
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }

        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8; // the data starts 8-byte aligned; the header is padded with spaces
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        output.Write(length);
        output.Write(json);
        for (var i = json.Length; i < padded; i++)
        {
            output.WriteByte((byte)' ');
        }

        foreach (var t in tensors)
        {
            output.Write(MemoryMarshal.AsBytes(t.Values.AsSpan()));
        }
    }

    public static IReadOnlyList<NamedTensor> Read(ReadOnlySpan<byte> file)
    {
        if (file.Length < 8)
        {
            throw new WeightsFormatException("The safetensors file is shorter than its 8-byte header length.");
        }

        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength > (ulong)Math.Min(MaxHeaderBytes, file.Length - 8))
        {
            throw new WeightsFormatException($"The safetensors header claims {headerLength:N0} bytes; the file has {file.Length - 8:N0} after the length.");
        }

        JsonObject header;
        try
        {
            header = JsonNode.Parse(file.Slice(8, (int)headerLength)) as JsonObject ?? throw new WeightsFormatException("The safetensors header is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new WeightsFormatException($"The safetensors header is not valid JSON: {ex.Message}", ex);
        }

        var data = file[(8 + (int)headerLength)..];
        var result = new List<NamedTensor>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                continue;
            }

            try
            {
                var dtype = node!["dtype"]!.GetValue<string>();
                var shape = node["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offsets = node["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                if (shape.Any(d => d < 0) || offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > data.Length)
                {
                    throw new WeightsFormatException($"Tensor '{name}': shape or data_offsets out of range.");
                }

                var count = shape.Aggregate(1L, (a, d) => checked(a * d));
                var bytes = data[(int)offsets[0]..(int)offsets[1]];
                var size = dtype switch { "F32" => 4, "F64" => 8, "F16" or "BF16" => 2, _ => throw new WeightsFormatException($"Tensor '{name}': dtype {dtype} is not supported (F32, F64, F16 or BF16).") };
                if (bytes.Length != count * size)
                {
                    throw new WeightsFormatException($"Tensor '{name}': {bytes.Length:N0} bytes for {count:N0} {dtype} values.");
                }

                var values = new float[count];
                for (var i = 0; i < count; i++)
                {
                    var b = bytes.Slice(i * size, size);
                    values[i] = dtype switch
                    {
                        "F32" => BinaryPrimitives.ReadSingleLittleEndian(b),
                        "F64" => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
                        "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(b),
                        _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
                    };
                }

                result.Add(new NamedTensor(name, shape, values));
            }
            catch (Exception ex) when (ex is InvalidOperationException or NullReferenceException or FormatException or OverflowException)
            {
                throw new WeightsFormatException($"Tensor '{name}' in the safetensors header is malformed: {ex.Message}", ex);
            }
        }

        return result;
    }
}
