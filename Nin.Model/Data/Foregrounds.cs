namespace Nin.Model.Data;

/// <summary>
/// Whether a set's objects are light on a dark background (MNIST), dark on a light one (most photos of
/// objects on paper or a wall), or neither, judged from the images' borders.
/// </summary>
public static class Foregrounds
{
    public const string LightOnDark = "light-on-dark";
    public const string DarkOnLight = "dark-on-light";
    public const string None = "none";

    /// <summary>Share of images whose border must agree for a set to count as one or the other.</summary>
    public const double Agreement = 0.8;

    /// <summary>Mean brightness (0–255) of the outermost ring of a planar C×S×S image.</summary>
    public static double BorderMean(ReadOnlySpan<byte> planar, int channels, int side)
    {
        long sum = 0;
        var count = 0;
        var area = side * side;
        for (var c = 0; c < channels; c++)
        {
            var plane = planar.Slice(c * area, area);
            for (var i = 0; i < side; i++)
            {
                sum += plane[i] + plane[((side - 1) * side) + i];
                count += 2;
                if (i > 0 && i < side - 1)
                {
                    sum += plane[i * side] + plane[(i * side) + side - 1];
                    count += 2;
                }
            }
        }

        return count == 0 ? 0 : (double)sum / count;
    }

    /// <summary>
    /// <see cref="DarkOnLight"/> when at least <see cref="Agreement"/> of the images have a light border (mean above
    /// the middle), <see cref="LightOnDark"/> when as many have a dark one, else <see cref="None"/>.
    /// </summary>
    public static string Measure(IEnumerable<double> borderMeans)
    {
        int light = 0, dark = 0;
        foreach (var mean in borderMeans)
        {
            if (mean > 127.5)
            {
                light++;
            }
            else
            {
                dark++;
            }
        }

        var total = light + dark;
        if (total == 0)
        {
            return None;
        }

        return light >= Agreement * total ? DarkOnLight : dark >= Agreement * total ? LightOnDark : None;
    }
}
