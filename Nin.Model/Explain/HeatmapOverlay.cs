using SkiaSharp;

namespace Nin.Model.Explain;

/// <summary>
/// A class activation map drawn over the image the network saw: the map resized to the image bilinearly (Torch's
/// <c>align_corners=false</c> arithmetic), coloured from dark blue through green and yellow to red, and blended in
/// by its own strength, so places without evidence show the image as it is. PNG.
/// </summary>
public static class HeatmapOverlay
{
    /// <param name="image">The network's input, C×S×S values in 0–1 (C = 1 grey, 3 RGB).</param>
    /// <param name="channels">C.</param>
    /// <param name="size">S.</param>
    /// <param name="map">The map (<see cref="ActivationMap.Values"/>), h×w values in 0–1.</param>
    public static byte[] Png(ReadOnlySpan<float> image, int channels, int size, ActivationMap map)
    {
        var upsampled = Resize(map.Values, map.Width, map.Height, size, size);
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var pixels = new byte[size * size * 4];
        var plane = size * size;
        for (var p = 0; p < plane; p++)
        {
            float r, g, b;
            if (channels >= 3)
            {
                (r, g, b) = (image[p], image[plane + p], image[(2 * plane) + p]);
            }
            else
            {
                r = g = b = image[p];
            }

            var t = Math.Clamp(upsampled[p], 0f, 1f);
            var (hr, hg, hb) = Colour(t);
            var a = 0.65f * t;
            pixels[(p * 4) + 0] = ToByte((r * (1 - a)) + (hr * a));
            pixels[(p * 4) + 1] = ToByte((g * (1 - a)) + (hg * a));
            pixels[(p * 4) + 2] = ToByte((b * (1 - a)) + (hb * a));
            pixels[(p * 4) + 3] = 255;
        }

        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }

    /// <summary>Bilinear resize of an h×w map to H×W with <c>align_corners=false</c> (as Torch's interpolate).</summary>
    public static float[] Resize(float[] map, int width, int height, int toWidth, int toHeight)
    {
        var result = new float[toWidth * toHeight];
        float sy = (float)height / toHeight, sx = (float)width / toWidth;
        for (var y = 0; y < toHeight; y++)
        {
            var fy = Math.Max(0f, ((y + 0.5f) * sy) - 0.5f);
            var y0 = Math.Min((int)fy, height - 1);
            var y1 = Math.Min(y0 + 1, height - 1);
            var wy = fy - y0;
            for (var x = 0; x < toWidth; x++)
            {
                var fx = Math.Max(0f, ((x + 0.5f) * sx) - 0.5f);
                var x0 = Math.Min((int)fx, width - 1);
                var x1 = Math.Min(x0 + 1, width - 1);
                var wx = fx - x0;
                var top = (map[(y0 * width) + x0] * (1 - wx)) + (map[(y0 * width) + x1] * wx);
                var bottom = (map[(y1 * width) + x0] * (1 - wx)) + (map[(y1 * width) + x1] * wx);
                result[(y * toWidth) + x] = (top * (1 - wy)) + (bottom * wy);
            }
        }

        return result;
    }

    /// <summary>Dark blue (0) → cyan → green → yellow → red (1), a jet-like scale.</summary>
    private static (float R, float G, float B) Colour(float t) =>
        (Math.Clamp((1.5f - Math.Abs((4 * t) - 3)), 0, 1), Math.Clamp((1.5f - Math.Abs((4 * t) - 2)), 0, 1), Math.Clamp((1.5f - Math.Abs((4 * t) - 1)), 0, 1));

    private static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v * 255), 0, 255);
}
