using Nin.Api.Tests.Api;
using Nin.Model.Imaging;
using SkiaSharp;

namespace Nin.Api.Tests.Model;

/// <summary>The decoder's work is bounded by its output (28×28 here), whatever the shape of its input.</summary>
[UnitTests]
public sealed class ImageDecoderTests
{
    private const long MaxPixels = 40_000_000;

    public static TheoryData<int, int> UsableShapes => new()
    {
        { 28, 28 },
        { 1, 1 },
        { 560, 28 },
        { 28, 560 },
        { 4000, 200 },
        { 200, 4000 },
        { 3000, 2000 },
        { 20, 1 },
    };

    [Theory]
    [MemberData(nameof(UsableShapes))]
    public void Managed_memory_is_bounded_by_the_output_not_the_input(int width, int height)
    {
        var png = HostileInputTests.SolidPng(width, height);
        ImageDecoder.Decode(png, 3, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels); // warm-up: one-time allocations

        var before = GC.GetAllocatedBytesForCurrentThread();
        var image = ImageDecoder.Decode(png, 3, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(3 * 28 * 28, image.Pixels.Length);
        Assert.Equal((width, height), (image.SourceWidth, image.SourceHeight));
        // The output is 28×28: a few copies of it (RGBA, padded, planar) and bookkeeping, never the input's area,
        // let alone its longest side squared (4000×200 used to allocate 4000² × 4 bytes = 64 MB here).
        Assert.True(allocated < 64 * 1024, $"{width}×{height}: {allocated:N0} managed bytes allocated");
    }

    public static TheoryData<int, int> LinesAndStrips => new()
    {
        { 30000, 1 },
        { 1, 30000 },
        { 11314, 100 },
        { 100, 11314 },
        { 65535, 3 },
        { 21, 1 },
    };

    [Theory]
    [MemberData(nameof(LinesAndStrips))]
    public void Images_too_long_and_thin_for_the_output_are_refused_before_decoding(int width, int height)
    {
        var png = HostileInputTests.SolidPng(width, height);
        var error = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png, 1, 28, 28, lightOnDark: true, InvertMode.Auto, MaxPixels));
        Assert.Equal(ImageErrorKind.Unusable, error.Kind);
        Assert.Contains($"{width}×{height}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1, -1)] // 0xFFFFFFFF × 0xFFFFFFFF: the product overflows a long
    [InlineData(-1, 2)]
    [InlineData(0x7FFF_FFFF, 0x7FFF_FFFF)]
    [InlineData(0x7FFF_FFFF, 1)]
    [InlineData(100_000, 100_000)]
    public void Header_sizes_are_checked_in_long_arithmetic(int width, int height)
    {
        var error = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(TestImages.PngHeaderOnly(width, height), 1, 28, 28, false, InvertMode.False, MaxPixels));
        Assert.Equal(ImageErrorKind.TooLarge, error.Kind);
    }

    [Theory]
    [InlineData(4000L, 200L, 28, 28, 28, 1)]
    [InlineData(200L, 4000L, 28, 28, 1, 28)]
    [InlineData(560L, 280L, 28, 28, 28, 14)]
    [InlineData(28L, 28L, 28, 28, 28, 28)]
    [InlineData(1L, 1L, 28, 28, 28, 28)]
    [InlineData(3_000_000_000L, 2_000_000_000L, 64, 64, 64, 43)]
    public void Fit_keeps_the_aspect_ratio_within_the_output(long w, long h, int width, int height, int fitWidth, int fitHeight) =>
        Assert.Equal((fitWidth, fitHeight), ImageDecoder.Fit(w, h, width, height));

    [Fact]
    public void A_wide_image_is_scaled_then_padded_with_its_border_colour()
    {
        // A white 280×140 image with a black square in its middle: 28×14 after scaling, centred on white.
        using var bitmap = new SKBitmap(new SKImageInfo(280, 140, SKColorType.Gray8, SKAlphaType.Opaque));
        bitmap.Erase(SKColors.White);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = SKColors.Black })
        {
            canvas.DrawRect(120, 50, 40, 40, paint);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        var decoded = ImageDecoder.Decode(encoded.ToArray(), 1, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);
        var px = decoded.Pixels;
        Assert.Equal(255, px[0]); // padding: the border colour
        Assert.Equal(255, px[(27 * 28) + 27]);
        Assert.True(px[(14 * 28) + 14] < 128, $"centre {px[(14 * 28) + 14]}"); // the square, scaled by 1/10
        Assert.Equal(255, px[(6 * 28) + 14]); // above the scaled image (rows 7..20 hold it)
    }

    [Fact]
    public async Task A_big_progressive_jpeg_decodes_through_the_gate_and_a_cancelled_request_never_starts_its_decode()
    {
        var jpeg = ProgressiveJpeg.Grey(6_000, 6_000); // 36 MP, ~1.3 MB of coefficients per component × 3 in the decoder
        Assert.True(jpeg.Length < 250_000, $"{jpeg.Length} bytes");
        var image = await ImageDecoder.DecodeAsync(jpeg, 1, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);
        Assert.Equal(6_000, image.SourceWidth);
        Assert.All(image.Pixels, p => Assert.InRange(p, 120, 136)); // flat mid grey

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ImageDecoder.DecodeAsync(jpeg, 1, 28, 28, false, InvertMode.False, MaxPixels, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ImageDecoder.DecodeAsync(TestImages.FashionImage(0), 1, 28, 28, false, InvertMode.False, MaxPixels, cancelled.Token));
    }

    public static TheoryData<int, string> Orientations()
    {
        var data = new TheoryData<int, string>();
        for (var orientation = 2; orientation <= 8; orientation++)
        {
            data.Add(orientation, "jpeg");
            data.Add(orientation, "png"); // an eXIf chunk, which SkiaSharp's codec does not read itself
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Orientations))]
    public void A_photo_is_turned_upright_as_its_exif_orientation_says(int orientation, string format)
    {
        // Upright: 64×32, a white block top left and a grey one bottom right, on black. A camera stores it turned or
        // mirrored and says so in EXIF; the decoder must give what a viewer shows, as the same picture stored upright.
        using var upright = new SKBitmap(new SKImageInfo(64, 32, SKColorType.Gray8, SKAlphaType.Opaque));
        upright.Erase(SKColors.Black);
        using (var canvas = new SKCanvas(upright))
        using (var white = new SKPaint { Color = SKColors.White })
        using (var grey = new SKPaint { Color = new SKColor(128, 128, 128) })
        {
            canvas.DrawRect(0, 0, 16, 16, white);
            canvas.DrawRect(40, 16, 24, 16, grey);
        }

        var sideways = orientation >= 5;
        var (storedWidth, storedHeight) = sideways ? (32, 64) : (64, 32);
        using var stored = new SKBitmap(new SKImageInfo(storedWidth, storedHeight, SKColorType.Gray8, SKAlphaType.Opaque));
        for (var sy = 0; sy < storedHeight; sy++)
        {
            for (var sx = 0; sx < storedWidth; sx++)
            {
                // Where the viewer shows stored pixel (sx, sy) (EXIF 2..8: mirror, half turn, flip, transpose,
                // quarter turn clockwise, transverse, quarter turn anticlockwise).
                var (x, y) = orientation switch
                {
                    2 => (storedWidth - 1 - sx, sy),
                    3 => (storedWidth - 1 - sx, storedHeight - 1 - sy),
                    4 => (sx, storedHeight - 1 - sy),
                    5 => (sy, sx),
                    6 => (storedHeight - 1 - sy, sx),
                    7 => (storedHeight - 1 - sy, storedWidth - 1 - sx),
                    _ => (sy, storedWidth - 1 - sx),
                };
                stored.SetPixel(sx, sy, upright.GetPixel(x, y));
            }
        }

        var encode = format == "png" ? (Func<SKBitmap, byte[]>)Png : Jpeg;
        var tagged = format == "png" ? PngWithExifOrientation(Png(stored), orientation) : WithExifOrientation(Jpeg(stored), orientation);
        var expected = ImageDecoder.Decode(encode(upright), 1, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);
        var unturned = ImageDecoder.Decode(encode(stored), 1, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);
        var turned = ImageDecoder.Decode(tagged, 1, 28, 28, lightOnDark: false, InvertMode.False, MaxPixels);

        Assert.Equal((64, 32), (turned.SourceWidth, turned.SourceHeight)); // the size as shown
        Assert.True(MeanDifference(turned.Pixels, expected.Pixels) < 4, $"upright: mean difference {MeanDifference(turned.Pixels, expected.Pixels):F1}");
        Assert.True(MeanDifference(unturned.Pixels, expected.Pixels) > 20, $"without the tag: mean difference {MeanDifference(unturned.Pixels, expected.Pixels):F1}");
    }

    [Fact]
    public void A_damaged_png_exif_chunk_counts_as_no_orientation()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(8, 4, SKColorType.Gray8, SKAlphaType.Opaque));
        bitmap.Erase(SKColors.Gray);
        var png = Png(bitmap);
        var good = PngWithExifOrientation(png, 6);
        Assert.Equal(6, ImageHeader.PngExifOrientation(good));
        var exif = 8 + 12 + 13 + 8; // where the eXIf chunk's data (its TIFF block) starts
        byte[][] damaged =
        [
            Patched(good, exif + 4, [0xFF, 0xFF, 0xFF, 0x7F]), // first IFD far beyond the block
            Patched(good, exif + 8, [0xFF, 0xFF, 0, 0]), // 65,535 entries in a block of one, none of them the orientation
            Patched(good, exif, [(byte)'X', (byte)'X']), // neither byte order
            Patched(good, exif + 18, [9, 0]), // orientation 9
            Patched(good, 8 + 12 + 13, [0x7F, 0xFF, 0xFF, 0xFF]), // the chunk claims 2 GB
            good[..(exif + 6)], // cut inside the chunk
        ];
        foreach (var data in damaged)
        {
            Assert.Equal(1, ImageHeader.PngExifOrientation(data));
        }

        Assert.Equal(1, ImageHeader.PngExifOrientation(png)); // none at all
    }

    private static byte[] Patched(byte[] data, int at, byte[] bytes)
    {
        var copy = (byte[])data.Clone();
        bytes.CopyTo(copy, at);
        return copy;
    }

    private static byte[] Jpeg(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Jpeg, 100);
        return encoded.ToArray();
    }

    private static byte[] Png(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }

    /// <summary>EXIF with one IFD entry, Orientation; big-endian (Motorola) for JPEG here, little-endian (Intel) for PNG.</summary>
    private static byte[] ExifTiff(int orientation, bool little) => little
        ? [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (byte)orientation, 0, 0, 0, 0, 0, 0, 0]
        : [(byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0, 0, 0, 0, 0];

    /// <summary>The JPEG with an APP1 EXIF segment after its SOI marker.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, int orientation)
    {
        var payload = "Exif\0\0"u8.ToArray().Concat(ExifTiff(orientation, little: false)).ToArray();
        var length = payload.Length + 2;
        byte[] segment = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload];
        return [.. jpeg.AsSpan(0, 2), .. segment, .. jpeg.AsSpan(2)];
    }

    /// <summary>The PNG with an <c>eXIf</c> chunk (and its CRC) right after IHDR, before the image data.</summary>
    private static byte[] PngWithExifOrientation(byte[] png, int orientation)
    {
        var tiff = ExifTiff(orientation, little: true);
        byte[] typeAndData = [.. "eXIf"u8, .. tiff];
        var chunk = new byte[12 + tiff.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)tiff.Length);
        typeAndData.CopyTo(chunk, 4);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + tiff.Length), TestImages.Crc32(typeAndData));
        const int afterIhdr = 8 + 12 + 13;
        return [.. png.AsSpan(0, afterIhdr), .. chunk, .. png.AsSpan(afterIhdr)];
    }

    private static double MeanDifference(byte[] a, byte[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average();
}
