using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Nin.Model.Archives;

/// <summary>One file or folder of a zip as its central directory and local header describe it.</summary>
public sealed record ZipEntryInfo(string Name, int Method, int Flags, long CompressedLength, long Length, uint Crc32, long HeaderOffset, long DataOffset, int UnixMode)
{
    public bool IsDirectory => Name.EndsWith('/');

    public bool IsSymbolicLink => (UnixMode & 0xF000) == 0xA000;

    /// <summary>Segments of the path, empty ones dropped ("a//b/" has two).</summary>
    public int Depth => Name.Split('/', StringSplitOptions.RemoveEmptyEntries).Length;
}

/// <summary>
/// A zip's index, read by this service rather than trusted to <see cref="ZipArchive"/>, so that what an archive may cost
/// is decided before any of it is parsed or inflated: the entry count comes from the end-of-central-directory record
/// (ZIP64's when present) and is refused before a single central-directory record is read; names are capped; every
/// entry's bytes (local header to end of its compressed data) must lie inside the archive and apart from every other
/// entry's, so no two entries inflate the same compressed bytes. Entries are then inflated one at a time, each held to
/// the size it declares and its CRC-32. Stored and deflate entries only; encrypted and multi-disk archives are refused.
/// </summary>
public sealed class ZipIndex
{
    /// <summary>Longest entry name read (bytes); paths this long are not datasets or state_dicts.</summary>
    public const int MaxNameBytes = 1024;

    private const uint EndOfCentralDirectory = 0x06054b50;
    private const uint Zip64EndOfCentralDirectory = 0x06064b50;
    private const uint Zip64Locator = 0x07064b50;
    private const uint CentralHeader = 0x02014b50;
    private const uint LocalHeader = 0x04034b50;

    private readonly Stream stream;

    private ZipIndex(Stream stream, IReadOnlyList<ZipEntryInfo> entries)
    {
        this.stream = stream;
        Entries = entries;
    }

    /// <summary>The entries in central-directory order.</summary>
    public IReadOnlyList<ZipEntryInfo> Entries { get; }

    /// <summary>True when the data starts with a local file header ("PK\x03\x04").</summary>
    public static bool LooksLikeZip(ReadOnlySpan<byte> start) => start.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(start) == LocalHeader;

    /// <summary>
    /// Reads the index of the zip in <paramref name="stream"/> (seekable; left open and owned by the caller).
    /// Throws <see cref="ZipLimitException"/> when it declares more than <paramref name="maxEntries"/> entries or its
    /// entries overlap, <see cref="ZipFormatException"/> when it is not a readable zip.
    /// </summary>
    public static ZipIndex Read(Stream stream, int maxEntries, CancellationToken cancellationToken = default)
    {
        if (!stream.CanSeek || !stream.CanRead)
        {
            throw new ArgumentException("The stream must be readable and seekable.", nameof(stream));
        }

        var length = stream.Length;
        var (count, directoryOffset, directorySize, directoryEnd) = ReadEnd(stream, length);
        if (count > maxEntries)
        {
            throw new ZipLimitException($"The zip declares {count:N0} entries; the limit is {maxEntries:N0}.");
        }

        if (directoryOffset < 0 || directorySize < 0 || directoryOffset + directorySize > directoryEnd)
        {
            throw new ZipFormatException("The zip's central directory lies outside the file.");
        }

        var entries = ReadDirectory(stream, (int)count, directoryOffset, directorySize, cancellationToken);
        LocateData(stream, entries, directoryOffset, cancellationToken);
        return new ZipIndex(stream, entries);
    }

    /// <summary>
    /// The entry's bytes, inflated (at most <see cref="ZipEntryInfo.Length"/> of them are ever held; an entry that yields
    /// more or fewer than it declares, or whose CRC-32 differs, is refused).
    /// </summary>
    public byte[] ReadAll(ZipEntryInfo entry, CancellationToken cancellationToken = default)
    {
        if (entry.Length > Array.MaxLength)
        {
            throw new ZipLimitException($"Entry '{Printable(entry.Name)}' declares {entry.Length:N0} bytes.");
        }

        var buffer = new byte[entry.Length];
        try
        {
            using var source = OpenRaw(entry);
            var read = 0;
            while (read < buffer.Length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var n = source.Read(buffer, read, Math.Min(buffer.Length - read, 1 << 20));
                if (n == 0)
                {
                    throw new ZipFormatException($"Entry '{Printable(entry.Name)}' holds less data than it declares.");
                }

                read += n;
            }

            if (source.ReadByte() >= 0)
            {
                throw new ZipFormatException($"Entry '{Printable(entry.Name)}' holds more data than it declares.");
            }
        }
        catch (InvalidDataException)
        {
            throw new ZipFormatException($"Entry '{Printable(entry.Name)}' is corrupt (its deflate data cannot be read).");
        }

        if (Crc32.Append(0, buffer) != entry.Crc32)
        {
            throw new ZipFormatException($"Entry '{Printable(entry.Name)}' is corrupt (its CRC-32 does not match).");
        }

        return buffer;
    }

    /// <summary>An entry's name with control characters shown as '?' and cut to 200 characters, for messages.</summary>
    public static string Printable(string name) => new(name.Take(200).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private Stream OpenRaw(ZipEntryInfo entry)
    {
        if ((entry.Flags & 1) != 0)
        {
            throw new ZipFormatException($"Entry '{Printable(entry.Name)}' is encrypted.");
        }

        var window = new WindowStream(stream, entry.DataOffset, entry.CompressedLength);
        return entry.Method switch
        {
            0 when entry.CompressedLength == entry.Length => window,
            0 => throw new ZipFormatException($"Entry '{Printable(entry.Name)}' is stored with {entry.CompressedLength:N0} bytes for {entry.Length:N0}."),
            8 => new DeflateStream(window, CompressionMode.Decompress),
            _ => throw new ZipFormatException($"Entry '{Printable(entry.Name)}' uses compression method {entry.Method}; only stored and deflate are read."),
        };
    }

    private static (long Count, long Offset, long Size, long End) ReadEnd(Stream stream, long length)
    {
        if (length < 22)
        {
            throw new ZipFormatException("The file is too short to be a zip archive.");
        }

        // The record is 22 bytes plus a comment of at most 65,535: search that tail, last match first.
        var tailLength = (int)Math.Min(length, 22 + ushort.MaxValue);
        var tail = new byte[tailLength];
        ReadAt(stream, length - tailLength, tail);
        var at = -1;
        for (var i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndOfCentralDirectory
                && i + 22 + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) <= tailLength)
            {
                at = i;
                break;
            }
        }

        if (at < 0)
        {
            throw new ZipFormatException("The file is not a zip archive (no end-of-central-directory record).");
        }

        var record = tail.AsSpan(at);
        var eocdPosition = length - tailLength + at;
        long disk = BinaryPrimitives.ReadUInt16LittleEndian(record[4..]);
        long directoryDisk = BinaryPrimitives.ReadUInt16LittleEndian(record[6..]);
        long onDisk = BinaryPrimitives.ReadUInt16LittleEndian(record[8..]);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(record[10..]);
        long size = BinaryPrimitives.ReadUInt32LittleEndian(record[12..]);
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
        var end = eocdPosition;

        if (count == ushort.MaxValue || onDisk == ushort.MaxValue || size == uint.MaxValue || offset == uint.MaxValue)
        {
            // ZIP64: a locator just before the record points at the 64-bit record.
            if (eocdPosition < 20)
            {
                throw new ZipFormatException("The zip's ZIP64 locator is missing.");
            }

            var locator = new byte[20];
            ReadAt(stream, eocdPosition - 20, locator);
            if (BinaryPrimitives.ReadUInt32LittleEndian(locator) != Zip64Locator)
            {
                throw new ZipFormatException("The zip's ZIP64 locator is missing.");
            }

            var recordOffset = BinaryPrimitives.ReadUInt64LittleEndian(locator.AsSpan(8));
            if (recordOffset > (ulong)(eocdPosition - 20 - 56))
            {
                throw new ZipFormatException("The zip's ZIP64 record lies outside the file.");
            }

            var zip64 = new byte[56];
            ReadAt(stream, (long)recordOffset, zip64);
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip64) != Zip64EndOfCentralDirectory)
            {
                throw new ZipFormatException("The zip's ZIP64 record is damaged.");
            }

            disk = BinaryPrimitives.ReadUInt32LittleEndian(zip64.AsSpan(16));
            directoryDisk = BinaryPrimitives.ReadUInt32LittleEndian(zip64.AsSpan(20));
            var onDisk64 = BinaryPrimitives.ReadUInt64LittleEndian(zip64.AsSpan(24));
            var count64 = BinaryPrimitives.ReadUInt64LittleEndian(zip64.AsSpan(32));
            var size64 = BinaryPrimitives.ReadUInt64LittleEndian(zip64.AsSpan(40));
            var offset64 = BinaryPrimitives.ReadUInt64LittleEndian(zip64.AsSpan(48));
            if (count64 > int.MaxValue || onDisk64 != count64 || size64 > long.MaxValue || offset64 > long.MaxValue)
            {
                throw new ZipLimitException($"The zip declares {count64:N0} entries.");
            }

            (onDisk, count, size, offset) = ((long)onDisk64, (long)count64, (long)size64, (long)offset64);
            end = (long)recordOffset;
        }

        if (disk != 0 || directoryDisk != 0 || onDisk != count)
        {
            throw new ZipFormatException("Multi-part (spanned) zip archives are not read.");
        }

        return (count, offset, size, end);
    }

    private static List<ZipEntryInfo> ReadDirectory(Stream stream, int count, long offset, long size, CancellationToken cancellationToken)
    {
        var entries = new List<ZipEntryInfo>(Math.Min(count, 4096));
        var reader = new BufferedStream(new WindowStream(stream, offset, size), 64 * 1024);
        var fixedPart = new byte[46];
        var name = new byte[MaxNameBytes];
        for (var i = 0; i < count; i++)
        {
            if ((i & 255) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            ReadExactly(reader, fixedPart, "central directory");
            var h = fixedPart.AsSpan();
            if (BinaryPrimitives.ReadUInt32LittleEndian(h) != CentralHeader)
            {
                throw new ZipFormatException($"The zip's central directory is damaged at record {i + 1:N0}.");
            }

            int flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            int method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long length = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            int startDisk = BinaryPrimitives.ReadUInt16LittleEndian(h[34..]);
            var external = BinaryPrimitives.ReadUInt32LittleEndian(h[38..]);
            long headerOffset = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            if (nameLength > MaxNameBytes)
            {
                throw new ZipLimitException($"Entry {i + 1:N0} has a {nameLength:N0}-byte name; the limit is {MaxNameBytes:N0}.");
            }

            ReadExactly(reader, name.AsSpan(0, nameLength), "central directory");
            var text = (flags & 0x800) != 0 ? Encoding.UTF8.GetString(name, 0, nameLength) : Encoding.Latin1.GetString(name, 0, nameLength);

            var extra = new byte[extraLength];
            ReadExactly(reader, extra, "central directory");
            var needs64 = (Length: length == uint.MaxValue, Compressed: compressed == uint.MaxValue, Offset: headerOffset == uint.MaxValue);
            if (needs64.Length || needs64.Compressed || needs64.Offset || startDisk == ushort.MaxValue)
            {
                (length, compressed, headerOffset) = ReadZip64Extra(extra, needs64, length, compressed, headerOffset, text);
            }
            else if (startDisk != 0)
            {
                throw new ZipFormatException("Multi-part (spanned) zip archives are not read.");
            }

            reader.Seek(commentLength, SeekOrigin.Current);
            entries.Add(new ZipEntryInfo(text, method, flags, compressed, length, crc, headerOffset, -1, (int)(external >> 16)));
        }

        return entries;
    }

    private static (long Length, long Compressed, long Offset) ReadZip64Extra(
        byte[] extra, (bool Length, bool Compressed, bool Offset) needs, long length, long compressed, long offset, string name)
    {
        var span = extra.AsSpan();
        while (span.Length >= 4)
        {
            int id = BinaryPrimitives.ReadUInt16LittleEndian(span);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(span[2..]);
            if (size > span.Length - 4)
            {
                break;
            }

            if (id == 1)
            {
                // The 64-bit values present are those whose 32-bit fields are saturated, in this order.
                var field = span.Slice(4, size);
                var values = new long[field.Length / 8];
                for (var i = 0; i < values.Length; i++)
                {
                    var value = BinaryPrimitives.ReadUInt64LittleEndian(field[(i * 8)..]);
                    values[i] = value > long.MaxValue ? throw new ZipLimitException($"Entry '{Printable(name)}' declares an impossible size.") : (long)value;
                }

                var next = 0;
                long Next() => next < values.Length ? values[next++] : throw new ZipFormatException($"Entry '{Printable(name)}' has a damaged ZIP64 field.");
                if (needs.Length)
                {
                    length = Next();
                }

                if (needs.Compressed)
                {
                    compressed = Next();
                }

                if (needs.Offset)
                {
                    offset = Next();
                }

                return (length, compressed, offset);
            }

            span = span[(4 + size)..];
        }

        throw new ZipFormatException($"Entry '{Printable(name)}' lacks the ZIP64 field its sizes call for.");
    }

    /// <summary>Where each entry's data starts, from its local header; refuses entries outside the file or over one another.</summary>
    private static void LocateData(Stream stream, List<ZipEntryInfo> entries, long directoryOffset, CancellationToken cancellationToken)
    {
        var header = new byte[30];
        var ends = new (long Start, long End, int Index)[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            if ((i & 255) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            var e = entries[i];
            if (e.HeaderOffset < 0 || e.HeaderOffset > directoryOffset - 30)
            {
                throw new ZipFormatException($"Entry '{Printable(e.Name)}' points outside the archive.");
            }

            ReadAt(stream, e.HeaderOffset, header);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != LocalHeader)
            {
                throw new ZipFormatException($"Entry '{Printable(e.Name)}' has no local header where the directory says.");
            }

            var data = e.HeaderOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(26)) + BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(28));
            if (e.CompressedLength < 0 || data + e.CompressedLength > directoryOffset)
            {
                throw new ZipFormatException($"Entry '{Printable(e.Name)}' runs past the end of the archive's data.");
            }

            entries[i] = e with { DataOffset = data };
            ends[i] = (e.HeaderOffset, data + e.CompressedLength, i);
        }

        Array.Sort(ends, (a, b) => a.Start.CompareTo(b.Start));
        for (var i = 1; i < ends.Length; i++)
        {
            if (ends[i].Start < ends[i - 1].End)
            {
                throw new ZipLimitException(
                    $"Entries '{Printable(entries[ends[i - 1].Index].Name)}' and '{Printable(entries[ends[i].Index].Name)}' overlap: each entry must have bytes of its own.");
            }
        }
    }

    private static void ReadAt(Stream stream, long position, Span<byte> buffer)
    {
        stream.Position = position;
        ReadExactly(stream, buffer, "archive");
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string where)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new ZipFormatException($"The zip's {where} is truncated.");
        }
    }

    /// <summary>A read-only window [start, start + length) of a seekable stream, positioned independently of other windows.</summary>
    private sealed class WindowStream(Stream inner, long start, long length) : Stream
    {
        private long position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => position;
            set => position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, length - position);
            if (n <= 0)
            {
                return 0;
            }

            inner.Position = start + position;
            n = inner.Read(buffer[..n]);
            position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            _ => length + offset,
        };

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
