using System.Collections.Immutable;

namespace Nin.Model.Network;

/// <summary>
/// The registry of network designs, by name: <c>nin</c> (d2l's NiN, exactly) and <c>nin-bn</c>
/// (BatchNorm after every convolution, no ReLU after the class convolution), plus any registered with
/// <see cref="Register"/>. <c>nin-d2l</c>, the name older <c>model.json</c> files record, is read as <c>nin</c>.
/// A name that is not registered is refused everywhere (<see cref="Get"/> throws), never read as NiN.
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
        (c, k) => new NinNetwork(c, k, batchNorm: false),
        NinLayers.D2l,
        NinGeometry.MaximumImageSize,
        pyTorchWeights: true,
        minInputSize: NinGeometry.MinimumImageSize,
        parameterCount: (c, k) => NinGeometry.ParameterCount(c, k, batchNorm: false),
        bytesPerImage: (s, c, k) => NinGeometry.TrainingBytesPerImage(s, c, k, batchNorm: false));

    public static readonly NetworkArchitecture NinBn = new(
        NinBnName,
        "The NiN with BatchNorm after every convolution and no ReLU after the last 1×1 class convolution (this project's deviation: d2l's NiN can lose a class channel for good on small datasets).",
        (c, k) => new NinNetwork(c, k, batchNorm: true),
        NinLayers.BatchNormed,
        NinGeometry.MaximumImageSize,
        pyTorchWeights: false,
        minInputSize: NinGeometry.MinimumImageSize,
        parameterCount: (c, k) => NinGeometry.ParameterCount(c, k, batchNorm: true),
        bytesPerImage: (s, c, k) => NinGeometry.TrainingBytesPerImage(s, c, k, batchNorm: true));

    private static readonly Lock Gate = new();
    private static ImmutableArray<NetworkArchitecture> all = [Nin, NinBn];

    /// <summary>Every registered architecture, the built-in ones first, in the order registered (a snapshot).</summary>
    public static IReadOnlyList<NetworkArchitecture> All => all;

    /// <summary>The names of <see cref="All"/> (a snapshot).</summary>
    public static IReadOnlyList<string> Names => [.. all.Select(a => a.Name)];

    /// <summary>
    /// Adds an architecture. Register before the host starts: the OpenAPI document, <c>GET /recipes</c> and a worker's
    /// published capabilities read the registry as it is when they are made. Refuses a name (or the legacy alias)
    /// already taken. Disposing the returned handle withdraws it again (tests do; a service keeps its registrations).
    /// </summary>
    public static IDisposable Register(NetworkArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        lock (Gate)
        {
            if (Find(architecture.Name) is not null)
            {
                throw new InvalidOperationException($"An architecture named '{architecture.Name}' is already registered.");
            }

            all = all.Add(architecture);
        }

        return new Registration(architecture);
    }

    /// <summary>The architecture called <paramref name="name"/> (case-insensitive, aliases included), or null.</summary>
    public static NetworkArchitecture? Find(string? name)
    {
        if (string.Equals(name, LegacyNinName, StringComparison.OrdinalIgnoreCase))
        {
            return Nin;
        }

        return all.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The architecture called <paramref name="name"/>; an <see cref="ArgumentException"/> naming the known ones otherwise.</summary>
    public static NetworkArchitecture Get(string name) =>
        Find(name) ?? throw new ArgumentException($"Unknown architecture '{name}'. Known: {string.Join(", ", Names)}.", nameof(name));

    private sealed class Registration(NetworkArchitecture architecture) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                lock (Gate)
                {
                    all = all.Remove(architecture);
                }
            }
        }
    }
}
