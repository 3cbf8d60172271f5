using System.Buffers.Binary;
using System.Text;
using Nin.Model.Data;
using SkiaSharp;

namespace Nin.Api.Tests;

/// <summary>Encoded test images: Fashion-MNIST test items as PNG/JPEG, and crafted bad files.</summary>
public static class TestImages
{
    private static readonly Lazy<DatasetSplit> Fashion = new(() => BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, maxTrain: 1, maxTest: 10000));

    public static ImageDataset FashionTest => Fashion.Value.Test;

    public static byte[] Encode(byte[] grey, int width, int height, SKEncodedImageFormat format, int quality = 95)
    {
        var info = new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        System.Runtime.InteropServices.Marshal.Copy(grey, 0, bitmap.GetPixels(), grey.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }

    public static byte[] FashionImage(int index, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        var test = FashionTest;
        return Encode(test.Pixels.AsSpan(index * 784, 784).ToArray(), 28, 28, format);
    }

    public static int FashionLabel(int index) => FashionTest.Labels[index];

    /// <summary>A valid PNG signature and IHDR claiming the given size, with no image data.</summary>
    public static byte[] PngHeaderOnly(int width, int height)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 0; // greyscale
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        WriteChunk(ms, "IHDR", ihdr);
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    public static byte[] Truncated(byte[] data, double fraction = 0.5) => data[..(int)(data.Length * fraction)];

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32([.. typeBytes, .. data]));
        s.Write(len);
    }

    /// <summary>PNG's CRC-32 (ISO-HDLC, reflected 0xEDB88320) over a chunk's type and data.</summary>
    internal static uint Crc32(byte[] bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }
}
