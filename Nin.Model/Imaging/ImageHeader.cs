using System.Buffers.Binary;

namespace Nin.Model.Imaging;

/// <summary>
/// Reads an image's declared size from its header bytes alone, so a file that claims billions of
/// pixels is refused before a decoder allocates anything.
/// </summary>
public static class ImageHeader
{
    public static bool TryReadSize(ReadOnlySpan<byte> d, string format, out long width, out long height)
    {
        width = height = 0;
        switch (format)
        {
            case "png" when d.Length >= 24:
                width = BinaryPrimitives.ReadUInt32BigEndian(d[16..]);
                height = BinaryPrimitives.ReadUInt32BigEndian(d[20..]);
                return true;
            case "gif" when d.Length >= 10:
                width = BinaryPrimitives.ReadUInt16LittleEndian(d[6..]);
                height = BinaryPrimitives.ReadUInt16LittleEndian(d[8..]);
                return true;
            case "bmp" when d.Length >= 26:
                width = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d[18..]));
                height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d[22..]));
                return true;
            case "webp" when d.Length >= 30:
                return TryWebP(d, out width, out height);
            case "jpeg":
                return TryJpeg(d, out width, out height);
            default:
                return false;
        }
    }

    private static bool TryWebP(ReadOnlySpan<byte> d, out long width, out long height)
    {
        width = height = 0;
        var chunk = d[12..16];
        if (chunk.SequenceEqual("VP8X"u8))
        {
            width = 1 + (d[24] | (d[25] << 8) | (d[26] << 16));
            height = 1 + (d[27] | (d[28] << 8) | (d[29] << 16));
            return true;
        }

        if (chunk.SequenceEqual("VP8L"u8) && d.Length >= 25)
        {
            var bits = BinaryPrimitives.ReadUInt32LittleEndian(d[21..]);
            width = 1 + (bits & 0x3FFF);
            height = 1 + ((bits >> 14) & 0x3FFF);
            return true;
        }

        if (chunk.SequenceEqual("VP8 "u8))
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(d[26..]) & 0x3FFF;
            height = BinaryPrimitives.ReadUInt16LittleEndian(d[28..]) & 0x3FFF;
            return true;
        }

        return false;
    }

    private static bool TryJpeg(ReadOnlySpan<byte> d, out long width, out long height)
    {
        width = height = 0;
        var i = 2;
        while (i + 9 < d.Length)
        {
            if (d[i] != 0xFF)
            {
                return false;
            }

            var marker = d[i + 1];
            if (marker == 0xFF)
            {
                i++;
                continue;
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(d[(i + 2)..]);
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                height = BinaryPrimitives.ReadUInt16BigEndian(d[(i + 5)..]);
                width = BinaryPrimitives.ReadUInt16BigEndian(d[(i + 7)..]);
                return true;
            }

            i += 2 + length;
        }

        return false;
    }

    /// <summary>
    /// The EXIF orientation (1–8) of a PNG's <c>eXIf</c> chunk, which browsers honour and SkiaSharp's codec does not read
    /// (it reads JPEG's and WebP's); 1 when there is none or it cannot be read. Only the chunks before the image data are
    /// looked at, every offset is checked against the data, and a damaged chunk simply counts as no orientation.
    /// </summary>
    public static int PngExifOrientation(ReadOnlySpan<byte> d)
    {
        var i = 8;
        while (i + 8 <= d.Length)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(d[i..]);
            var type = d.Slice(i + 4, 4);
            if (type.SequenceEqual("IDAT"u8) || length > (uint)(d.Length - i - 8))
            {
                return 1;
            }

            if (type.SequenceEqual("eXIf"u8))
            {
                return TiffOrientation(d.Slice(i + 8, (int)length));
            }

            i += 12 + (int)length; // length, type, data, CRC
        }

        return 1;
    }

    /// <summary>Orientation (tag 0x0112, a SHORT in the first IFD) of a TIFF-structured EXIF block; 1 when absent or unreadable.</summary>
    private static int TiffOrientation(ReadOnlySpan<byte> t)
    {
        if (t.Length < 8)
        {
            return 1;
        }

        var little = t[0] == (byte)'I' && t[1] == (byte)'I';
        if (!little && !(t[0] == (byte)'M' && t[1] == (byte)'M'))
        {
            return 1;
        }

        uint U32(ReadOnlySpan<byte> b) => little ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);
        ushort U16(ReadOnlySpan<byte> b) => little ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);
        var ifd = U32(t[4..]);
        if (ifd > (uint)(t.Length - 2))
        {
            return 1;
        }

        var count = U16(t[(int)ifd..]);
        for (var e = 0; e < count; e++)
        {
            var at = (long)ifd + 2 + (12L * e);
            if (at + 12 > t.Length)
            {
                return 1;
            }

            var entry = t.Slice((int)at, 12);
            if (U16(entry) == 0x0112 && U16(entry[2..]) == 3) // Orientation, SHORT: the value sits in the entry itself
            {
                var value = U16(entry[8..]);
                return value is >= 1 and <= 8 ? value : 1;
            }
        }

        return 1;
    }
}
