using System.Runtime.InteropServices;
using SkiaSharp;

namespace Nin.Model.Imaging;

/// <summary>Why an image was refused: maps to 415, 413 and 400 in the API.</summary>
public enum ImageErrorKind
{
    Unsupported,
    TooLarge,
    Corrupt,
}

/// <summary>An image that cannot be used, with a message fit for the client.</summary>
public sealed class ImageDecodeException(ImageErrorKind kind, string message) : Exception(message)
{
    public ImageErrorKind Kind { get; } = kind;
}

/// <summary>Whether to invert grey levels so the object is light on a dark background.</summary>
public enum InvertMode
{
    /// <summary>Invert when the image's border is light (a typical photo or scan).</summary>
    Auto,
    True,
    False,
}

/// <summary>An image turned into the network's native input: planar bytes C×H×W.</summary>
public sealed record DecodedImage(byte[] Pixels, string Format, int SourceWidth, int SourceHeight, bool Inverted);

/// <summary>
/// Decodes PNG, JPEG, WebP, GIF (first frame) and BMP with SkiaSharp into a model's native input:
/// its channels (grey by BT.601 luma), padded to a square with the border colour, resized to the
/// dataset's size. The header is read first, so an image that claims too many pixels is refused
/// before anything is allocated for it.
/// </summary>
public static class ImageDecoder
{
    private static readonly (string Format, byte[] Magic)[] Signatures =
    [
        ("png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
        ("jpeg", [0xFF, 0xD8, 0xFF]),
        ("gif", "GIF87a"u8.ToArray()),
        ("gif", "GIF89a"u8.ToArray()),
        ("bmp", "BM"u8.ToArray()),
    ];

    /// <summary>The format named by the file's first bytes, or null for anything else.</summary>
    public static string? DetectFormat(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 12 && data[..4].SequenceEqual("RIFF"u8) && data[8..12].SequenceEqual("WEBP"u8))
        {
            return "webp";
        }

        foreach (var (format, magic) in Signatures)
        {
            if (data.StartsWith(magic))
            {
                return format;
            }
        }

        return null;
    }

    public static DecodedImage Decode(byte[] data, int channels, int width, int height, bool lightOnDark, InvertMode invert, long maxPixels)
    {
        if (data.Length == 0)
        {
            throw new ImageDecodeException(ImageErrorKind.Unsupported, "The image is empty.");
        }

        var format = DetectFormat(data) ?? throw new ImageDecodeException(ImageErrorKind.Unsupported,
            "Not a supported image: send PNG, JPEG, WebP, GIF or BMP.");

        if (ImageHeader.TryReadSize(data, format, out var declaredWidth, out var declaredHeight) && declaredWidth * declaredHeight > maxPixels)
        {
            throw new ImageDecodeException(ImageErrorKind.TooLarge,
                $"The image declares {declaredWidth}×{declaredHeight} pixels; at most {maxPixels:N0} pixels are accepted.");
        }

        using var skData = SKData.CreateCopy(data);
        var stream = new SKMemoryStream(skData); // owned by the codec once created
        using var codec = SKCodec.Create(stream, out var result);
        if (codec is null)
        {
            stream.Dispose();
            throw new ImageDecodeException(ImageErrorKind.Corrupt, $"The {format.ToUpperInvariant()} image is corrupt or truncated ({result}).");
        }

        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1)
        {
            throw new ImageDecodeException(ImageErrorKind.Corrupt, $"The {format.ToUpperInvariant()} image has no pixels.");
        }

        if ((long)info.Width * info.Height > maxPixels)
        {
            throw new ImageDecodeException(ImageErrorKind.TooLarge,
                $"The image is {info.Width}×{info.Height} pixels; at most {maxPixels:N0} pixels are accepted.");
        }

        // Decode big JPEGs at a reduced scale where the codec can: we only need the native size.
        var scale = Math.Min(1f, 4f * Math.Max(width, height) / Math.Min(info.Width, info.Height));
        var size = scale < 1f ? codec.GetScaledDimensions(scale) : new SKSizeI(info.Width, info.Height);
        var decodeInfo = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(decodeInfo);
        var decoded = codec.GetPixels(decodeInfo, bitmap.GetPixels());
        if (decoded != SKCodecResult.Success)
        {
            throw new ImageDecodeException(ImageErrorKind.Corrupt, decoded == SKCodecResult.IncompleteInput
                ? $"The {format.ToUpperInvariant()} image is truncated."
                : $"The {format.ToUpperInvariant()} image could not be decoded ({decoded}).");
        }

        var rgba = OnWhite(bitmap);
        var border = BorderColour(rgba, size.Width, size.Height);
        var squared = ToSquare(rgba, size.Width, size.Height, border);
        var side = Math.Max(size.Width, size.Height);
        var resized = side == width && side == height ? squared : Resize(squared, side, width, height);

        var doInvert = invert switch
        {
            InvertMode.True => true,
            InvertMode.False => false,
            _ => lightOnDark && Luma(border) > 127,
        };
        return new DecodedImage(ToPlanar(resized, width * height, channels, doInvert), format, info.Width, info.Height, doInvert);
    }

    // Transparent pixels are shown on white, as a viewer would show them.
    private static byte[] OnWhite(SKBitmap bitmap)
    {
        var pixels = new byte[bitmap.Width * bitmap.Height * 4];
        Marshal.Copy(bitmap.GetPixels(), pixels, 0, pixels.Length);
        for (var i = 0; i < pixels.Length; i += 4)
        {
            var a = pixels[i + 3];
            if (a == 255)
            {
                continue;
            }

            for (var c = 0; c < 3; c++)
            {
                pixels[i + c] = (byte)(((pixels[i + c] * a) + (255 * (255 - a)) + 127) / 255);
            }

            pixels[i + 3] = 255;
        }

        return pixels;
    }

    private static (byte R, byte G, byte B) BorderColour(byte[] rgba, int w, int h)
    {
        long r = 0, g = 0, b = 0, n = 0;
        void Add(int x, int y)
        {
            var i = ((y * w) + x) * 4;
            r += rgba[i];
            g += rgba[i + 1];
            b += rgba[i + 2];
            n++;
        }

        for (var x = 0; x < w; x++)
        {
            Add(x, 0);
            Add(x, h - 1);
        }

        for (var y = 1; y < h - 1; y++)
        {
            Add(0, y);
            Add(w - 1, y);
        }

        return ((byte)(r / n), (byte)(g / n), (byte)(b / n));
    }

    private static double Luma((byte R, byte G, byte B) c) => (0.299 * c.R) + (0.587 * c.G) + (0.114 * c.B);

    private static byte[] ToSquare(byte[] rgba, int w, int h, (byte R, byte G, byte B) fill)
    {
        if (w == h)
        {
            return rgba;
        }

        var side = Math.Max(w, h);
        var square = new byte[side * side * 4];
        for (var i = 0; i < square.Length; i += 4)
        {
            square[i] = fill.R;
            square[i + 1] = fill.G;
            square[i + 2] = fill.B;
            square[i + 3] = 255;
        }

        var ox = (side - w) / 2;
        var oy = (side - h) / 2;
        for (var y = 0; y < h; y++)
        {
            Buffer.BlockCopy(rgba, y * w * 4, square, (((y + oy) * side) + ox) * 4, w * 4);
        }

        return square;
    }

    private static byte[] Resize(byte[] rgba, int side, int width, int height)
    {
        var source = new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var src = new SKBitmap(source);
        Marshal.Copy(rgba, 0, src.GetPixels(), rgba.Length);
        using var dst = src.Resize(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
            ?? throw new ImageDecodeException(ImageErrorKind.Corrupt, "The image could not be resized.");
        var result = new byte[width * height * 4];
        Marshal.Copy(dst.GetPixels(), result, 0, result.Length);
        return result;
    }

    private static byte[] ToPlanar(byte[] rgba, int area, int channels, bool invert)
    {
        var planar = new byte[channels * area];
        for (var p = 0; p < area; p++)
        {
            var i = p * 4;
            if (channels == 1)
            {
                var grey = (byte)Math.Clamp(Math.Round((0.299 * rgba[i]) + (0.587 * rgba[i + 1]) + (0.114 * rgba[i + 2])), 0, 255);
                planar[p] = invert ? (byte)(255 - grey) : grey;
            }
            else
            {
                for (var c = 0; c < channels; c++)
                {
                    var v = rgba[i + Math.Min(c, 2)];
                    planar[(c * area) + p] = invert ? (byte)(255 - v) : v;
                }
            }
        }

        return planar;
    }
}
