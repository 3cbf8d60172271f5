using System.Buffers.Binary;
using System.IO.Compression;

namespace Nin.Model.Data;

/// <summary>An IDX image file: <c>count</c> greyscale images of <c>rows</c>×<c>columns</c> bytes, row-major.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels);

/// <summary>
/// Reads the IDX files of MNIST and Fashion-MNIST (LeCun's format, big-endian header), gzip or raw.
/// Headers are validated and every inconsistency is an <see cref="InvalidDataException"/> naming the file.
/// </summary>
public static class IdxReader
{
    public const int ImagesMagic = 0x00000803; // unsigned byte, 3 dimensions
    public const int LabelsMagic = 0x00000801; // unsigned byte, 1 dimension
    private const int MaxItems = 10_000_000;
    private const int MaxSide = 4096;

    public static IdxImages ReadImages(string path, int? limit = null)
    {
        using var stream = OpenMaybeGzip(path);
        var header = ReadHeader(stream, path, 16);
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != ImagesMagic)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' is not an IDX image file: magic number 0x{magic:X8}, expected 0x{ImagesMagic:X8}.");
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        var rows = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8));
        var columns = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(12));
        if (count is < 0 or > MaxItems || rows is < 1 or > MaxSide || columns is < 1 or > MaxSide)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' has an implausible IDX header: {count} images of {rows}×{columns}.");
        }

        var take = limit is { } l ? Math.Min(count, Math.Max(0, l)) : count;
        var pixels = new byte[checked(take * rows * columns)];
        ReadExactly(stream, pixels, path, $"{count} images of {rows}×{columns} pixels");
        return new IdxImages(take, rows, columns, pixels);
    }

    public static byte[] ReadLabels(string path, int? limit = null)
    {
        using var stream = OpenMaybeGzip(path);
        var header = ReadHeader(stream, path, 8);
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != LabelsMagic)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' is not an IDX label file: magic number 0x{magic:X8}, expected 0x{LabelsMagic:X8}.");
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        if (count is < 0 or > MaxItems)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' has an implausible IDX header: {count} labels.");
        }

        var take = limit is { } l ? Math.Min(count, Math.Max(0, l)) : count;
        var labels = new byte[take];
        ReadExactly(stream, labels, path, $"{count} labels");
        return labels;
    }

    /// <summary>The item count in an IDX header, without reading the data.</summary>
    public static int PeekCount(string path)
    {
        using var stream = OpenMaybeGzip(path);
        var header = ReadHeader(stream, path, 8);
        var magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic is not (ImagesMagic or LabelsMagic))
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' is not an IDX file: magic number 0x{magic:X8}.");
        }

        return BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
    }

    /// <summary>Reads an image file and its label file and checks they describe the same examples.</summary>
    public static (IdxImages Images, byte[] Labels) ReadPair(string imagesPath, string labelsPath, int classes, int? limit = null)
    {
        var images = ReadImages(imagesPath, limit);
        var labels = ReadLabels(labelsPath, limit);
        if (images.Count != labels.Length)
        {
            throw new InvalidDataException(
                $"'{Path.GetFileName(imagesPath)}' holds {images.Count} images but '{Path.GetFileName(labelsPath)}' holds {labels.Length} labels; they must match.");
        }

        var bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0)
        {
            throw new InvalidDataException($"'{Path.GetFileName(labelsPath)}' has label {labels[bad]} at index {bad}, outside the {classes} classes.");
        }

        return (images, labels);
    }

    private static Stream OpenMaybeGzip(string path)
    {
        var file = File.OpenRead(path);
        Span<byte> sig = stackalloc byte[2];
        var n = file.Read(sig);
        file.Position = 0;
        return n == 2 && sig[0] == 0x1f && sig[1] == 0x8b
            ? new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 16)
            : file;
    }

    private static byte[] ReadHeader(Stream stream, string path, int size)
    {
        var header = new byte[size];
        ReadExactly(stream, header, path, "an IDX header");
        return header;
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string path, string what)
    {
        var read = 0;
        try
        {
            while (read < buffer.Length)
            {
                var n = stream.Read(buffer, read, buffer.Length - read);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' is not valid gzip: {ex.Message}", ex);
        }

        if (read < buffer.Length)
        {
            throw new InvalidDataException($"'{Path.GetFileName(path)}' is truncated: it should hold {what} but ended after {read} of {buffer.Length} bytes.");
        }
    }
}
