namespace Nin.Api.Tests;

/// <summary>
/// A progressive JPEG of any size in a few hundred KiB: three components at full resolution (4:4:4), one DC-only scan of a
/// flat grey (every block's DC difference is 0, coded in one bit; the AC coefficients are never sent, so they stay 0).
/// A decoder of a progressive file must keep every block's coefficients until the last scan: 6 bytes per pixel (three
/// components × 2 bytes), whatever scale it decodes at — the cost a decode memory gate has to count.
/// </summary>
public static class ProgressiveJpeg
{
    public static byte[] Grey(int width, int height)
    {
        using var jpeg = new MemoryStream();
        jpeg.Write([0xFF, 0xD8]); // SOI

        // DQT: table 0, all ones.
        jpeg.Write([0xFF, 0xDB, 0x00, 0x43, 0x00]);
        jpeg.Write(Enumerable.Repeat((byte)1, 64).ToArray());

        // SOF2 (progressive, Huffman): 8 bits, height, width, 3 components 1×1 sampled on table 0.
        jpeg.Write([0xFF, 0xC2, 0x00, 0x11, 0x08, (byte)(height >> 8), (byte)height, (byte)(width >> 8), (byte)width, 0x03]);
        jpeg.Write([0x01, 0x11, 0x00, 0x02, 0x11, 0x00, 0x03, 0x11, 0x00]);

        // DHT: DC table 0 with one code, '0' (1 bit), for category 0 (a difference of 0).
        jpeg.Write([0xFF, 0xC4, 0x00, 0x14, 0x00, 0x01]);
        jpeg.Write(new byte[15]);
        jpeg.Write([0x00]);

        // SOS: the three components interleaved, DC only (Ss = Se = 0), first pass (Ah = Al = 0).
        jpeg.Write([0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00]);

        // One 0 bit per block: all zero bytes (no 0xFF to stuff), the last byte padded with 1 bits.
        var blocks = (long)((width + 7) / 8) * ((height + 7) / 8) * 3;
        var full = blocks / 8;
        jpeg.Write(new byte[full]);
        var rest = (int)(blocks % 8);
        if (rest > 0)
        {
            jpeg.WriteByte((byte)(0xFF >> rest));
        }

        jpeg.Write([0xFF, 0xD9]); // EOI
        return jpeg.ToArray();
    }
}
