using Nin.Model.Data;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>Pictures of the bench's synthetic shapes, encoded as RGB PNGs for uploads and /predict.</summary>
internal static class ShapePictures
{
    public static byte[] Png(byte[] planarRgb, int side)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var area = side * side;
        for (var y = 0; y < side; y++)
        {
            for (var x = 0; x < side; x++)
            {
                var i = (y * side) + x;
                bitmap.SetPixel(x, y, new SKColor(planarRgb[i], planarRgb[area + i], planarRgb[(2 * area) + i]));
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary><paramref name="perClass"/> pictures of each of the first <paramref name="classes"/> shapes, drawn from <paramref name="seed"/>.</summary>
    public static List<(string Class, byte[] Png)> Make(int classes, int perClass, int side, int seed) =>
        Make(Enumerable.Range(0, classes).ToArray(), perClass, side, seed);

    /// <summary><paramref name="perClass"/> pictures of each of the given shapes (indices into <see cref="SyntheticShapes.AllClassNames"/>).</summary>
    public static List<(string Class, byte[] Png)> Make(int[] shapes, int perClass, int side, int seed)
    {
        var random = new Random(seed);
        var result = new List<(string, byte[])>();
        for (var i = 0; i < perClass; i++)
        {
            foreach (var c in shapes)
            {
                result.Add((SyntheticShapes.AllClassNames[c], Png(SyntheticShapes.Draw(c, side, random), side)));
            }
        }

        return result;
    }

    public static byte[] Zip(IEnumerable<(string Class, byte[] Png)> pictures, string prefix = "") =>
        TestZips.Build(pictures.Select((p, i) => ($"{prefix}{p.Class}/{i:D4}.png", p.Png)));
}
