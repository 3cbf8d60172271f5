using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Nin.Api.Serving;

/// <summary>
/// The Open Inference Protocol's binary tensor data extension: a body is a JSON object of
/// <c>Inference-Header-Content-Length</c> bytes followed by each binary tensor's bytes in order (little-endian, row
/// major; a BYTES element is a 4-byte little-endian length and its bytes).
/// </summary>
public static class KServeBinary
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";
    public const string BinaryDataSize = "binary_data_size";
    public const string BinaryData = "binary_data";
    public const string BinaryDataOutput = "binary_data_output";

    /// <summary>Each input's binary bytes (null for JSON inputs), cut from the bytes after the JSON; a 400 when sizes don't add up.</summary>
    public static ReadOnlyMemory<byte>?[] Split(IReadOnlyList<V2Tensor> inputs, ReadOnlyMemory<byte> binary)
    {
        var parts = new ReadOnlyMemory<byte>?[inputs.Count];
        var offset = 0L;
        for (var i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].Parameters?.TryGetValue(BinaryDataSize, out var size) != true)
            {
                continue;
            }

            if (size.ValueKind != JsonValueKind.Number || !size.TryGetInt64(out var bytes) || bytes < 0)
            {
                throw InferenceErrors.BadRequest($"Input '{inputs[i].Name}': {BinaryDataSize} must be a non-negative integer.");
            }

            if (offset + bytes > binary.Length)
            {
                throw InferenceErrors.BadRequest($"Input '{inputs[i].Name}' declares {bytes:N0} bytes of binary data; only {binary.Length - offset:N0} follow the JSON.");
            }

            parts[i] = binary.Slice((int)offset, (int)bytes);
            offset += bytes;
        }

        return offset != binary.Length
            ? throw InferenceErrors.BadRequest($"{binary.Length - offset:N0} bytes after the JSON belong to no input (the inputs' {BinaryDataSize} add up to {offset:N0}).")
            : parts;
    }

    /// <summary>FP32 values from little-endian bytes.</summary>
    public static float[] Floats(ReadOnlySpan<byte> bytes)
    {
        var values = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        if (!BitConverter.IsLittleEndian)
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4, 4));
            }
        }

        return values;
    }

    /// <summary>BYTES elements (4-byte little-endian length, then the bytes), as slices of the body (no copies); null when the data is malformed.</summary>
    public static List<ReadOnlyMemory<byte>>? Elements(ReadOnlyMemory<byte> bytes, int maxElements)
    {
        var result = new List<ReadOnlyMemory<byte>>();
        while (bytes.Length > 0)
        {
            if (bytes.Length < 4 || result.Count >= maxElements)
            {
                return null;
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes.Span);
            if (length > bytes.Length - 4)
            {
                return null;
            }

            result.Add(bytes.Slice(4, (int)length));
            bytes = bytes[(4 + (int)length)..];
        }

        return result;
    }

    public static byte[] FromFloats(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static byte[] FromStrings(IEnumerable<string> values)
    {
        using var buffer = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var value in values)
        {
            var bytes = Encoding.UTF8.GetBytes(value);
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
            buffer.Write(length);
            buffer.Write(bytes);
        }

        return buffer.ToArray();
    }
}

/// <summary>An inference response with binary outputs: the JSON, then the outputs' bytes, with the JSON's length in a header.</summary>
public sealed class KServeBinaryResult(V2InferResponse response, IReadOnlyList<byte[]> binaries) : IResult
{
    public V2InferResponse Response => response;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(response, JsonSerializerOptions.Web);
        httpContext.Response.StatusCode = StatusCodes.Status200OK;
        httpContext.Response.ContentType = "application/octet-stream";
        httpContext.Response.Headers[KServeBinary.HeaderLengthHeader] = json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        httpContext.Response.ContentLength = json.Length + binaries.Sum(b => (long)b.Length);
        await httpContext.Response.Body.WriteAsync(json);
        foreach (var binary in binaries)
        {
            await httpContext.Response.Body.WriteAsync(binary);
        }
    }
}
