namespace Nin.Model.Data;

/// <summary>
/// A small "own dataset" made up on the spot: dark shapes (disc, square, triangle, cross, ring, bar) of random
/// size, position and colour on light, unevenly lit, noisy backgrounds, like photos of shapes drawn on paper.
/// Deterministic for a seed. The benchmark trains on it; the tests upload it as PNGs.
/// </summary>
public static class SyntheticShapes
{
    public static IReadOnlyList<string> AllClassNames { get; } = ["disc", "square", "triangle", "cross", "ring", "bar"];

    /// <summary>One RGB picture (planar 3×S×S bytes) of class <paramref name="label"/>.</summary>
    public static byte[] Draw(int label, int size, Random random)
    {
        var pixels = new byte[3 * size * size];
        var area = size * size;
        var background = new double[3];
        for (var c = 0; c < 3; c++)
        {
            background[c] = 175 + (random.NextDouble() * 70);
        }

        var ink = new double[3];
        var inkBase = 20 + (random.NextDouble() * 70);
        for (var c = 0; c < 3; c++)
        {
            ink[c] = inkBase + (random.NextDouble() * 40);
        }

        var radius = size * (0.2 + (random.NextDouble() * 0.12));
        var cx = (size / 2.0) + ((random.NextDouble() - 0.5) * size * 0.25);
        var cy = (size / 2.0) + ((random.NextDouble() - 0.5) * size * 0.25);
        var light = (random.NextDouble() - 0.5) * 40;
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var dx = (x + 0.5 - cx) / radius;
                var dy = (y + 0.5 - cy) / radius;
                var inside = label switch
                {
                    0 => (dx * dx) + (dy * dy) <= 1,
                    1 => Math.Abs(dx) <= 0.85 && Math.Abs(dy) <= 0.85,
                    2 => dy <= 0.8 && dy >= -0.9 && Math.Abs(dx) <= (dy + 0.9) / 1.7 * 0.95,
                    3 => (Math.Abs(dx) <= 0.25 && Math.Abs(dy) <= 1) || (Math.Abs(dy) <= 0.25 && Math.Abs(dx) <= 1),
                    4 => (dx * dx) + (dy * dy) <= 1 && (dx * dx) + (dy * dy) >= 0.45,
                    _ => Math.Abs(dx) <= 1.1 && Math.Abs(dy) <= 0.3,
                };
                var shade = light * ((double)x / size - 0.5);
                for (var c = 0; c < 3; c++)
                {
                    var v = (inside ? ink[c] : background[c] + shade) + ((random.NextDouble() - 0.5) * 16);
                    pixels[(c * area) + (y * size) + x] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
            }
        }

        return pixels;
    }

    /// <summary>
    /// <paramref name="perClass"/> pictures of each of the first <paramref name="classes"/> shapes, 1 in 6 of each
    /// class held out for testing, as the upload endpoint splits a zip without train/ and test/.
    /// </summary>
    public static DatasetSplit Generate(int classes, int perClass, int size, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(classes, AllClassNames.Count);
        var random = new Random(seed);
        var train = new List<(byte, byte[])>();
        var test = new List<(byte, byte[])>();
        for (var i = 0; i < perClass; i++)
        {
            for (var label = 0; label < classes; label++)
            {
                (i % 6 == 5 ? test : train).Add(((byte)label, Draw(label, size, random)));
            }
        }

        var names = AllClassNames.Take(classes).ToArray();
        ImageDataset Make(List<(byte Label, byte[] Pixels)> items) =>
            new("shapes", names, 3, size, size, items.SelectMany(i => i.Pixels).ToArray(), items.Select(i => i.Label).ToArray())
            {
                Foreground = Foregrounds.DarkOnLight,
            };

        return new DatasetSplit(Make(train), Make(test));
    }
}
