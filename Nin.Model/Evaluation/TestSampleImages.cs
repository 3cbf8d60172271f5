using Nin.Model.Data;
using SkiaSharp;

namespace Nin.Model.Evaluation;

/// <summary>A dataset image as a PNG at its native size (grey or RGB), for galleries.</summary>
public static class TestSampleImages
{
    public static byte[] Png(ImageDataset data, int index)
    {
        var (w, h, c) = (data.Width, data.Height, data.Channels);
        var plane = w * h;
        var source = data.Pixels.AsSpan(index * c * plane, c * plane);
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[plane * 4];
        for (var p = 0; p < plane; p++)
        {
            rgba[(p * 4) + 0] = source[p];
            rgba[(p * 4) + 1] = source[(c >= 3 ? plane : 0) + p];
            rgba[(p * 4) + 2] = source[(c >= 3 ? 2 * plane : 0) + p];
            rgba[(p * 4) + 3] = 255;
        }

        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }
}
