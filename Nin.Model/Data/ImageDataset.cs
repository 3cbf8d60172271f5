namespace Nin.Model.Data;

/// <summary>
/// Labelled images held compactly as bytes (N×C×H×W, 0–255), the form the training loop copies
/// to the device once and resizes there batch by batch.
/// </summary>
public sealed class ImageDataset
{
    public ImageDataset(string name, IReadOnlyList<string> classNames, int channels, int height, int width, byte[] pixels, byte[] labels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classNames.Count, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (pixels.LongLength != (long)labels.Length * channels * height * width)
        {
            throw new InvalidDataException($"Dataset '{name}': {pixels.LongLength} pixel bytes do not make {labels.Length} images of {channels}×{height}×{width}.");
        }

        Name = name;
        ClassNames = classNames;
        Channels = channels;
        Height = height;
        Width = width;
        Pixels = pixels;
        Labels = labels;
    }

    public string Name { get; }

    public IReadOnlyList<string> ClassNames { get; }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public byte[] Pixels { get; }

    public byte[] Labels { get; }

    public int Count => Labels.Length;

    /// <summary>What the pictures look like (<see cref="Foregrounds"/>); the built-ins are light on dark.</summary>
    public string Foreground { get; init; } = Foregrounds.LightOnDark;

    /// <summary>The first <paramref name="count"/> examples (or all, when null or larger).</summary>
    public ImageDataset Take(int? count)
    {
        if (count is not { } n || n >= Count)
        {
            return this;
        }

        var size = Channels * Height * Width;
        return new ImageDataset(Name, ClassNames, Channels, Height, Width, Pixels.AsSpan(0, n * size).ToArray(), Labels.AsSpan(0, n).ToArray())
        {
            Foreground = Foreground,
        };
    }
}

/// <summary>A training set and its test set.</summary>
public sealed record DatasetSplit(ImageDataset Train, ImageDataset Test);
