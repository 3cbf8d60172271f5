using Nin.Model.Network;

namespace Nin.Model.Interop;

/// <summary>A tensor as a weights file's index declares it, before any of its values are read.</summary>
public sealed record DeclaredTensor(string Name, long[] Shape);

/// <summary>
/// What a state_dict for one architecture may hold: every parameter with its exact shape, nothing else. Keys may be
/// d2l's (<c>0.0.weight</c> … <c>7.4.bias</c>) or this project's own (<c>net.block1.0.weight</c>, or without <c>net.</c>).
/// The importers check a file's index against it before they allocate anything for values, so what a file may make
/// the service hold is bounded by what the architecture legitimately needs, not by what the file claims.
/// </summary>
public sealed class StateDictSchema
{
    /// <summary>The widest element the importers read (float64): a legitimate file holds at most this many bytes per parameter.</summary>
    public const int MaxElementBytes = 8;

    private readonly (string Key, string OwnKey, long[] Shape)[] expected;

    public StateDictSchema(IReadOnlyList<NinLayer> layers)
    {
        expected = NinLayers.Parameters(layers).ToArray();
        Elements = expected.Sum(e => e.Shape.Aggregate(1L, (a, d) => checked(a * d)));
    }

    /// <summary>How many tensors a matching file holds.</summary>
    public int TensorCount => expected.Length;

    /// <summary>How many values all parameters hold together.</summary>
    public long Elements { get; }

    /// <summary>The most bytes a matching file's tensors may occupy (every value as float64).</summary>
    public long MaxDataBytes => Elements * MaxElementBytes;

    /// <summary>
    /// The d2l key of each declared tensor, in the order given; throws naming the first key that is unexpected,
    /// mis-shaped or present twice, then the first one missing.
    /// </summary>
    public string[] Resolve(IReadOnlyList<DeclaredTensor> declared)
    {
        var own = declared.Any(t => t.Name.StartsWith("block", StringComparison.Ordinal) || t.Name.StartsWith("net.block", StringComparison.Ordinal));
        var byName = new Dictionary<string, (string Key, long[] Shape)>(StringComparer.Ordinal);
        foreach (var (key, ownKey, shape) in expected)
        {
            byName[own ? ownKey : key] = (key, shape);
            if (own)
            {
                byName[ownKey["net.".Length..]] = (key, shape);
            }
        }

        var keys = new string[declared.Count];
        var found = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < declared.Count; i++)
        {
            var t = declared[i];
            if (!byName.TryGetValue(t.Name, out var want))
            {
                throw new WeightsFormatException($"Unexpected key '{Printable(t.Name)}': this architecture's parameters are {Describe(own)}.");
            }

            if (!t.Shape.SequenceEqual(want.Shape))
            {
                throw new WeightsFormatException($"Key '{Printable(t.Name)}' has shape [{string.Join(", ", t.Shape.Take(8))}{(t.Shape.Length > 8 ? ", …" : "")}]; this architecture with these channels and classes needs [{string.Join(", ", want.Shape)}].");
            }

            if (!found.Add(want.Key))
            {
                throw new WeightsFormatException($"Key '{Printable(t.Name)}' appears twice (under two naming schemes).");
            }

            keys[i] = want.Key;
        }

        foreach (var (key, ownKey, _) in expected)
        {
            if (!found.Contains(key))
            {
                throw new WeightsFormatException($"Missing key '{(own ? ownKey : key)}'.");
            }
        }

        return keys;
    }

    /// <summary>The tensors (under d2l's keys) in the architecture's order, after checking every value is finite.</summary>
    public IReadOnlyList<NamedTensor> InOrder(IEnumerable<NamedTensor> tensors)
    {
        var byKey = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        if (byKey.Values.FirstOrDefault(t => t.Values.Any(v => !float.IsFinite(v))) is { } bad)
        {
            throw new WeightsFormatException($"Key '{bad.Name}' holds NaN or infinite values.");
        }

        return expected.Select(e => byKey[e.Key]).ToArray();
    }

    /// <summary>A key from a file, fit for a message: control characters as '?', at most 100 characters.</summary>
    public static string Printable(string key) => key.Length > 100 ? Clean(key[..100]) + "…" : Clean(key);

    private static string Clean(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private string Describe(bool own)
    {
        var names = expected.Select(e => own ? e.OwnKey : e.Key).ToArray();
        return $"{names[0]}, {names[1]}, … {names[^1]} ({names.Length} tensors)";
    }
}
