namespace Nin.Model.Network;

/// <summary>
/// The registry of network designs, by name: <c>nin</c> (d2l's NiN, exactly) and <c>nin-bn</c>
/// (BatchNorm after every convolution, no ReLU after the class convolution). <c>nin-d2l</c>, the name
/// older <c>model.json</c> files record, is read as <c>nin</c>.
/// </summary>
public static class NetworkArchitectures
{
    public const string NinName = "nin";
    public const string NinBnName = "nin-bn";

    /// <summary>What model.json files written before the registry say for <c>nin</c>.</summary>
    public const string LegacyNinName = "nin-d2l";

    public static readonly NetworkArchitecture Nin = new(
        NinName,
        "d2l.ai's Network in Network: four NiN blocks (k×k conv + two 1×1 convs, ReLU after each), three 3×3/2 max-pools, dropout 0.5, global average pooling.",
        NinGeometry.MinimumImageSize,
        (c, k) => new NinNetwork(c, k, batchNorm: false),
        (c, k) => NinGeometry.ParameterCount(c, k, batchNorm: false),
        (s, c, k) => NinGeometry.TrainingBytesPerImage(s, c, k, batchNorm: false));

    public static readonly NetworkArchitecture NinBn = new(
        NinBnName,
        "The NiN with BatchNorm after every convolution and no ReLU after the last 1×1 class convolution (this project's deviation: d2l's NiN can lose a class channel for good on small datasets).",
        NinGeometry.MinimumImageSize,
        (c, k) => new NinNetwork(c, k, batchNorm: true),
        (c, k) => NinGeometry.ParameterCount(c, k, batchNorm: true),
        (s, c, k) => NinGeometry.TrainingBytesPerImage(s, c, k, batchNorm: true));

    public static IReadOnlyList<NetworkArchitecture> All { get; } = [Nin, NinBn];

    public static IReadOnlyList<string> Names { get; } = [.. All.Select(a => a.Name)];

    /// <summary>The architecture called <paramref name="name"/> (case-insensitive, aliases included), or null.</summary>
    public static NetworkArchitecture? Find(string? name)
    {
        if (string.Equals(name, LegacyNinName, StringComparison.OrdinalIgnoreCase))
        {
            return Nin;
        }

        return All.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The architecture called <paramref name="name"/>; an <see cref="ArgumentException"/> naming the known ones otherwise.</summary>
    public static NetworkArchitecture Get(string name) =>
        Find(name) ?? throw new ArgumentException($"Unknown architecture '{name}'. Known: {string.Join(", ", Names)}.", nameof(name));
}
