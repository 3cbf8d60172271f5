using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Nin.Model.Archives;

namespace Nin.Api.Tests.Hostile;

/// <summary>
/// Writes zip archives byte by byte, so tests can build what ZipArchive would never write: several central-directory
/// records pointing at one entry's bytes, an end record that declares more entries than follow, deep paths.
/// </summary>
internal sealed class RawZip
{
    private readonly MemoryStream body = new();
    private readonly List<(byte[] Name, int Method, uint Crc, long Compressed, long Length, long Offset, uint External)> records = [];

    public int Count => records.Count;

    /// <summary>An entry with its own bytes (deflated unless <paramref name="deflate"/> is false).</summary>
    public RawZip Add(string name, byte[] content, bool deflate = true, uint unixMode = 0)
    {
        var data = deflate ? Deflate(content) : content;
        var offset = body.Position;
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var crc = Crc32.Append(0, content);
        Span<byte> h = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 20);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 0x800);
        BinaryPrimitives.WriteUInt16LittleEndian(h[8..], (ushort)(deflate ? 8 : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(h[14..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(h[18..], (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[22..], (uint)content.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
        body.Write(h);
        body.Write(nameBytes);
        body.Write(data);
        records.Add((nameBytes, deflate ? 8 : 0, crc, data.Length, content.Length, offset, unixMode << 16));
        return this;
    }

    /// <summary>A further central-directory record for the bytes of entry <paramref name="of"/>, under another name.</summary>
    public RawZip Alias(string name, int of)
    {
        var r = records[of];
        records.Add((Encoding.UTF8.GetBytes(name), r.Method, r.Crc, r.Compressed, r.Length, r.Offset, r.External));
        return this;
    }

    /// <summary>The archive; <paramref name="declaredEntries"/> overrides the count its end record states.</summary>
    public byte[] Build(int? declaredEntries = null)
    {
        using var output = new MemoryStream();
        body.Position = 0;
        body.CopyTo(output);
        var directoryOffset = output.Position;
        var c = new byte[46];
        foreach (var r in records)
        {
            Array.Clear(c);
            BinaryPrimitives.WriteUInt32LittleEndian(c, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(4), (3 << 8) | 20);
            BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(6), 20);
            BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(8), 0x800);
            BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(10), (ushort)r.Method);
            BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(16), r.Crc);
            BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(20), (uint)r.Compressed);
            BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(24), (uint)r.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(28), (ushort)r.Name.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(38), r.External);
            BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(42), (uint)r.Offset);
            output.Write(c);
            output.Write(r.Name);
        }

        var directorySize = output.Position - directoryOffset;
        Span<byte> e = stackalloc byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(e, 0x06054b50);
        var count = (ushort)Math.Min(ushort.MaxValue - 1, declaredEntries ?? records.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(e[8..], count);
        BinaryPrimitives.WriteUInt16LittleEndian(e[10..], count);
        BinaryPrimitives.WriteUInt32LittleEndian(e[12..], (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)directoryOffset);
        output.Write(e);
        return output.ToArray();
    }

    public static byte[] Deflate(byte[] content)
    {
        using var buffer = new MemoryStream();
        using (var deflate = new DeflateStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            deflate.Write(content);
        }

        return buffer.ToArray();
    }
}
