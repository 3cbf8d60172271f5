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

    public static void Write(IReadOnlyList<NamedTensor> tensors, Stream output, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(Header(tensors, metadata), tensors, output);

    /// <summary>The file <see cref="Write(IReadOnlyList{NamedTensor}, Stream, IReadOnlyDictionary{string, string}?)"/> writes, in one array of exactly its size (an export kept in memory: no growing buffer, no copy).</summary>
    public static byte[] ToBytes(IReadOnlyList<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = Header(tensors, metadata);
        var file = new byte[header.Length + tensors.Sum(t => (long)t.Values.Length * sizeof(float))];
        using var into = new MemoryStream(file); // fixed size: a size computed wrong throws instead of growing
        Write(header, tensors, into);
        return file;
    }

    private static void Write(byte[] header, IReadOnlyList<NamedTensor> tensors, Stream output)
    {
        output.Write(header);
        foreach (var t in tensors)
        {
            output.Write(MemoryMarshal.AsBytes(t.Values.AsSpan()));
        }
    }

    /// <summary>Everything before the data: the 8-byte header length and the JSON header, padded with spaces so the data starts 8-byte aligned.</summary>
    private static byte[] Header(IReadOnlyList<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
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
        var padded = (json.Length + 7) / 8 * 8;
        var result = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length).Fill((byte)' ');
        return result;
    }

    /// <summary>The tensors of <paramref name="file"/> that <paramref name="schema"/> expects, in its order.</summary>
    public static IReadOnlyList<NamedTensor> Read(byte[] file, StateDictSchema schema) => Read(new MemoryStream(file, writable: false), schema);

    /// <summary>
    /// Reads a safetensors file from a seekable stream. The header is checked against <paramref name="schema"/> (names,
    /// shapes, count) and every byte range is checked to lie inside the file and apart from every other before any
    /// value is read, so the values read are at most what the architecture holds.
    /// </summary>
    public static IReadOnlyList<NamedTensor> Read(Stream file, StateDictSchema schema)
    {
        if (!file.CanSeek)
        {
            throw new ArgumentException("The stream must be seekable.", nameof(file));
        }

        var length = file.Length;
        if (length < 8)
        {
            throw new WeightsFormatException("The file is neither a PyTorch zip nor safetensors: it is shorter than safetensors' 8-byte header length.");
        }

        Span<byte> prefix = stackalloc byte[8];
        file.Position = 0;
        file.ReadExactly(prefix);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)Math.Min(MaxHeaderBytes, length - 8))
        {
            throw new WeightsFormatException($"The file is neither a PyTorch zip nor safetensors: a safetensors header of {headerLength:N0} bytes is claimed, and the file has {length - 8:N0} after the length (at most {MaxHeaderBytes:N0} are read).");
        }

        var headerBytes = new byte[headerLength];
        file.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes, documentOptions: new JsonDocumentOptions { MaxDepth = 8 }) as JsonObject
                ?? throw new WeightsFormatException("The safetensors header is not a JSON object.");
        }
        catch (JsonException)
        {
            throw new WeightsFormatException("The file is neither a PyTorch zip nor safetensors: its safetensors header is not valid JSON.");
        }

        var dataStart = 8 + (long)headerLength;
        var dataLength = length - dataStart;
        var entries = new List<(DeclaredTensor Tensor, string Dtype, long Start, long End)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                continue;
            }

            // Room for a key under both naming schemes, so the first misfit can be named; never more.
            if (entries.Count >= 2 * schema.TensorCount)
            {
                throw new WeightsFormatException($"The safetensors header lists more than {2 * schema.TensorCount} tensors; this architecture has {schema.TensorCount}.");
            }

            entries.Add(Describe(name, node, dataLength));
        }

        // Names, shapes and the count fit the architecture before anything is allocated for values.
        var keys = schema.Resolve(entries.Select(e => e.Tensor).ToArray());

        // Every tensor has bytes of its own: a header that points many tensors at one range is refused.
        var ranges = entries.Select(e => (e.Start, e.End, e.Tensor.Name)).Where(r => r.End > r.Start).OrderBy(r => r.Start).ToArray();
        for (var i = 1; i < ranges.Length; i++)
        {
            if (ranges[i].Start < ranges[i - 1].End)
            {
                throw new WeightsFormatException($"Tensors '{StateDictSchema.Printable(ranges[i - 1].Name)}' and '{StateDictSchema.Printable(ranges[i].Name)}' share bytes: safetensors data ranges must not overlap.");
            }
        }

        var result = new List<NamedTensor>(entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            var (tensor, dtype, start, end) = entries[i];
            var bytes = new byte[end - start];
            file.Position = dataStart + start;
            file.ReadExactly(bytes);
            result.Add(new NamedTensor(keys[i], tensor.Shape, ElementDecoder.ToFloats(bytes, dtype)));
        }

        return schema.InOrder(result);
    }

    private static (DeclaredTensor Tensor, string Dtype, long Start, long End) Describe(string name, JsonNode? node, long dataLength)
    {
        try
        {
            var dtype = node!["dtype"]!.GetValue<string>();
            var shapeNode = node["shape"]!.AsArray();
            if (shapeNode.Count > 8)
            {
                throw new WeightsFormatException($"Tensor '{StateDictSchema.Printable(name)}' has {shapeNode.Count} dimensions.");
            }

            var shape = shapeNode.Select(d => d!.GetValue<long>()).ToArray();
            var offsets = node["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (shape.Any(d => d < 0) || offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
            {
                throw new WeightsFormatException($"Tensor '{StateDictSchema.Printable(name)}': shape or data_offsets out of range.");
            }

            var size = ElementDecoder.Size(dtype) ?? throw new WeightsFormatException($"Tensor '{StateDictSchema.Printable(name)}': dtype {StateDictSchema.Printable(dtype)} is not supported (F32, F64, F16 or BF16).");
            var count = shape.Aggregate(1L, (a, d) => checked(a * d));
            if (offsets[1] - offsets[0] != checked(count * size))
            {
                throw new WeightsFormatException($"Tensor '{StateDictSchema.Printable(name)}': {offsets[1] - offsets[0]:N0} bytes for {count:N0} {dtype} values.");
            }

            return (new DeclaredTensor(name, shape), dtype, offsets[0], offsets[1]);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NullReferenceException or FormatException or OverflowException or ArgumentException)
        {
            throw new WeightsFormatException($"Tensor '{StateDictSchema.Printable(name)}' in the safetensors header is malformed (dtype, shape and data_offsets are needed).");
        }
    }
}
