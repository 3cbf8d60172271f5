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
}
