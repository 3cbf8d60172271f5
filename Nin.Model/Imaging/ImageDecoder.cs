using System.Runtime.InteropServices;
using SkiaSharp;

namespace Nin.Model.Imaging;

/// <summary>Why an image was refused: maps to 415, 413 and 400 in the API.</summary>
public enum ImageErrorKind
{
    Unsupported,
    TooLarge,
    Corrupt,

    /// <summary>Decodable, but of a shape the model cannot use (a line of pixels): 400.</summary>
    Unusable,
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
/// its channels (grey by BT.601 luma), turned upright as its EXIF orientation says (JPEG, WebP, PNG: a phone
/// stores a portrait photo sideways and viewers show it upright, so the model sees what the user sees), scaled to fit
/// the dataset's size and padded to it with its border colour. The header is read first, so an image that claims too
/// many pixels, or is too long and thin to be seen at that size, is refused before anything is allocated for it; the work after
/// decoding is bounded by the output's size, not the input's.
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

    /// <summary>
    /// Most pixels of an image decoded at once before one of the <see cref="DecodeGate"/>'s slots is needed:
    /// smaller images (1 MP, 4 MB decoded) never wait.
    /// </summary>
    public const long GatedPixels = 1_000_000;

    /// <summary>Longest side over shortest side beyond which an image is refused: it would shrink to a line.</summary>
    public const long MaxAspectRatio = 20;

    /// <summary>
    /// Big decodes (over <see cref="GatedPixels"/>) running at once, process-wide: one per core. With the per-image pixel
    /// limit this bounds the memory decoding can take, whatever the number of concurrent requests.
    /// </summary>
    private static readonly SemaphoreSlim DecodeGate = new(Math.Max(1, Environment.ProcessorCount));

    public static DecodedImage Decode(byte[] data, int channels, int width, int height, bool lightOnDark, InvertMode invert, long maxPixels) =>
        Decode(data, channels, width, height, lightOnDark, invert, maxPixels, gateHeld: false);

    /// <summary>
    /// <see cref="Decode(byte[], int, int, int, bool, InvertMode, long)"/> for request handlers, one path for every protocol:
    /// an image whose header does not show it small (at most <see cref="GatedPixels"/>) waits for a decode slot
    /// asynchronously and cancellably before anything is decoded, so waiting requests hold no thread and no memory, and
    /// a request that is gone or past its deadline never starts its decode. The slot is chosen by the source's size, not
    /// the size it decodes at: a progressive JPEG decoded at a reduced scale still holds its whole coefficient buffers.
    /// A big image decodes on a thread of its own, not the thread pool's.
    /// </summary>
    public static async Task<DecodedImage> DecodeAsync(ReadOnlyMemory<byte> data, int channels, int width, int height, bool lightOnDark, InvertMode invert, long maxPixels, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var small = DetectFormat(data.Span) is { } format && ImageHeader.TryReadSize(data.Span, format, out var w, out var h)
            && w >= 1 && h >= 1 && w <= GatedPixels / h;
        if (small)
        {
            return Decode(data.Span, channels, width, height, lightOnDark, invert, maxPixels, gateHeld: false);
        }

        await DecodeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // On a thread of its own: a big decode takes up to seconds of CPU, which on a thread-pool thread would hold
            // back every request's socket and handler work queued behind it (a thread costs ~0.1 ms next to that).
            return await Task.Factory.StartNew(() => Decode(data.Span, channels, width, height, lightOnDark, invert, maxPixels, gateHeld: true),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        }
        finally
        {
            DecodeGate.Release();
        }
    }

    private static DecodedImage Decode(ReadOnlySpan<byte> data, int channels, int width, int height, bool lightOnDark, InvertMode invert, long maxPixels, bool gateHeld)
    {
        if (data.Length == 0)
        {
            throw new ImageDecodeException(ImageErrorKind.Unsupported, "The image is empty.");
        }

        var format = DetectFormat(data) ?? throw new ImageDecodeException(ImageErrorKind.Unsupported,
            "Not a supported image: send PNG, JPEG, WebP, GIF or BMP.");

        if (ImageHeader.TryReadSize(data, format, out var declaredWidth, out var declaredHeight))
        {
            CheckShape(declaredWidth, declaredHeight, maxPixels, "declares");
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

        CheckShape(info.Width, info.Height, maxPixels, "is");

        // The work is bounded by the output: the image is scaled to fit the native size first (its longest side becomes
        // the output's), then padded; nothing of the source's size is ever squared. Big JPEGs decode at a reduced scale.
        // The fit is of the image as shown (EXIF orientation applied); it is turned upright once scaled, at output size.
        var origin = Origin(codec, format, data);
        var sideways = Sideways(origin);
        var (shownWidth, shownHeight) = sideways ? (info.Height, info.Width) : (info.Width, info.Height);
        var (fitWidth, fitHeight) = Fit(shownWidth, shownHeight, width, height);
        var (storedFitWidth, storedFitHeight) = sideways ? (fitHeight, fitWidth) : (fitWidth, fitHeight);
        var scale = Math.Min(1f, 4f * Math.Max(width, height) / Math.Max(info.Width, info.Height));
        var size = scale < 1f ? codec.GetScaledDimensions(scale) : new SKSizeI(info.Width, info.Height);
        // By the source's size: a progressive JPEG holds full-size coefficient buffers whatever scale it decodes at.
        var gated = !gateHeld && (long)info.Width * info.Height > GatedPixels;
        if (gated)
        {
            DecodeGate.Wait();
        }

        byte[] fitted;
        try
        {
            // Premultiplied: the resize then weighs colours by their opacity, as compositing on white first would.
            var decodeInfo = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
            using var bitmap = new SKBitmap(decodeInfo);
            var decoded = codec.GetPixels(decodeInfo, bitmap.GetPixels());
            if (decoded != SKCodecResult.Success)
            {
                throw new ImageDecodeException(ImageErrorKind.Corrupt, decoded == SKCodecResult.IncompleteInput
                    ? $"The {format.ToUpperInvariant()} image is truncated."
                    : $"The {format.ToUpperInvariant()} image could not be decoded ({decoded}).");
            }

            fitted = Upright(Resize(bitmap, storedFitWidth, storedFitHeight), storedFitWidth, storedFitHeight, origin);
        }
        finally
        {
            if (gated)
            {
                DecodeGate.Release();
            }
        }

        OnWhite(fitted);
        var border = BorderColour(fitted, fitWidth, fitHeight);
        var padded = Pad(fitted, fitWidth, fitHeight, width, height, border);

        var doInvert = invert switch
        {
            InvertMode.True => true,
            InvertMode.False => false,
            _ => lightOnDark && Luma(border) > 127,
        };
        return new DecodedImage(ToPlanar(padded, width * height, channels, doInvert), format, shownWidth, shownHeight, doInvert);
    }

    /// <summary>Refuses too many pixels (413) and shapes too long and thin to be seen at the output's size (400); all in long arithmetic.</summary>
    private static void CheckShape(long w, long h, long maxPixels, string verb)
    {
        if (w < 1 || h < 1)
        {
            throw new ImageDecodeException(ImageErrorKind.Corrupt, $"The image {verb} {w}×{h} pixels.");
        }

        if (w > maxPixels / h) // w × h > maxPixels, without overflowing for sides up to 2³²
        {
            throw new ImageDecodeException(ImageErrorKind.TooLarge,
                $"The image {verb} {w}×{h} pixels; at most {maxPixels:N0} pixels are accepted.");
        }

        if (Math.Max(w, h) > MaxAspectRatio * Math.Min(w, h))
        {
            throw new ImageDecodeException(ImageErrorKind.Unusable,
                $"The image {verb} {w}×{h} pixels; its longer side may be at most {MaxAspectRatio} times its shorter side.");
        }
    }

    /// <summary>The size of a w×h image scaled to fit in width×height, keeping its aspect ratio (at least 1×1).</summary>
    public static (int Width, int Height) Fit(long w, long h, int width, int height)
    {
        if (w * height >= h * width)
        {
            return (width, (int)Math.Clamp((h * width + (w / 2)) / w, 1, height));
        }

        return ((int)Math.Clamp((w * height + (h / 2)) / h, 1, width), height);
    }

    /// <summary>Premultiplied RGBA at the fitted size, copied out (only the output's size is allocated in managed memory).</summary>
    private static byte[] Resize(SKBitmap source, int width, int height)
    {
        if (source.Width == width && source.Height == height)
        {
            return source.GetPixelSpan().ToArray();
        }

        using var dst = source.Resize(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
            ?? throw new ImageDecodeException(ImageErrorKind.Corrupt, "The image could not be resized.");
        return dst.GetPixelSpan().ToArray();
    }

    /// <summary>The EXIF orientation: the codec reads JPEG's and WebP's; a PNG's <c>eXIf</c> chunk is read here.</summary>
    private static SKEncodedOrigin Origin(SKCodec codec, string format, ReadOnlySpan<byte> data) =>
        format == "png" && codec.EncodedOrigin == SKEncodedOrigin.TopLeft ? (SKEncodedOrigin)ImageHeader.PngExifOrientation(data) : codec.EncodedOrigin;

    /// <summary>Orientations 5–8: a quarter turn (or a transposition), so the image is shown with its sides swapped.</summary>
    private static bool Sideways(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>
    /// RGBA pixels stored <paramref name="width"/>×<paramref name="height"/> as the image is shown under its EXIF
    /// orientation: mirrored, turned a half turn, or (5–8) turned a quarter turn, so the result is height×width.
    /// </summary>
    internal static byte[] Upright(byte[] pixels, int width, int height, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft || (int)origin is < 1 or > 8)
        {
            return pixels;
        }

        var (shownWidth, shownHeight) = Sideways(origin) ? (height, width) : (width, height);
        var source = MemoryMarshal.Cast<byte, uint>(pixels.AsSpan());
        var result = new byte[pixels.Length];
        var target = MemoryMarshal.Cast<byte, uint>(result.AsSpan());
        for (var y = 0; y < shownHeight; y++)
        {
            for (var x = 0; x < shownWidth; x++)
            {
                // Where the shown pixel (x, y) is stored: the tag names where the stored first row and column are shown.
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (width - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (width - 1 - x, height - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, height - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, shownWidth - 1 - x),
                    SKEncodedOrigin.RightBottom => (shownHeight - 1 - y, shownWidth - 1 - x),
                    _ => (shownHeight - 1 - y, x), // LeftBottom
                };
                target[(y * shownWidth) + x] = source[(sy * width) + sx];
            }
        }

        return result;
    }

    // Transparent pixels are shown on white, as a viewer would show them: premultiplied colour plus white times (1 - alpha).
    private static void OnWhite(byte[] pixels)
    {
        for (var i = 0; i < pixels.Length; i += 4)
        {
            var a = pixels[i + 3];
            if (a == 255)
            {
                continue;
            }

            for (var c = 0; c < 3; c++)
            {
                pixels[i + c] = (byte)Math.Min(255, pixels[i + c] + 255 - a);
            }

            pixels[i + 3] = 255;
        }
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

    /// <summary>Centres a w×h image in width×height, filling the rest with the border colour.</summary>
    private static byte[] Pad(byte[] rgba, int w, int h, int width, int height, (byte R, byte G, byte B) fill)
    {
        if (w == width && h == height)
        {
            return rgba;
        }

        var padded = new byte[width * height * 4];
        for (var i = 0; i < padded.Length; i += 4)
        {
            padded[i] = fill.R;
            padded[i + 1] = fill.G;
            padded[i + 2] = fill.B;
            padded[i + 3] = 255;
        }

        var ox = (width - w) / 2;
        var oy = (height - h) / 2;
        for (var y = 0; y < h; y++)
        {
            Buffer.BlockCopy(rgba, y * w * 4, padded, (((y + oy) * width) + ox) * 4, w * 4);
        }

        return padded;
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
