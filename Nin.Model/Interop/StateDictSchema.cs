using Nin.Model.Network;

namespace Nin.Model.Interop;

/// <summary>
/// Matches a state_dict read from a file to an architecture's parameters, strictly: every parameter present with its
/// exact shape, nothing else. Keys may be d2l's (<c>0.0.weight</c> … <c>7.4.bias</c>) or this project's own
/// (<c>net.block1.0.weight</c>, or without <c>net.</c>).
/// </summary>
public static class StateDictMapping
{
    /// <summary>The parameters in the architecture's order under d2l's names; throws naming the first key that does not fit.</summary>
    public static IReadOnlyList<NamedTensor> Match(IReadOnlyList<NamedTensor> file, IReadOnlyList<NinLayer> layers)
    {
        var expected = NinLayers.Parameters(layers).ToArray();
        var own = file.Any(t => t.Name.StartsWith("block", StringComparison.Ordinal) || t.Name.StartsWith("net.block", StringComparison.Ordinal));
        var byName = new Dictionary<string, (string Key, long[] Shape)>(StringComparer.Ordinal);
        foreach (var (key, ownKey, shape) in expected)
        {
            byName[own ? ownKey : key] = (key, shape);
            if (own)
            {
                byName[ownKey["net.".Length..]] = (key, shape);
            }
        }

        var found = new Dictionary<string, NamedTensor>(StringComparer.Ordinal);
        foreach (var t in file)
        {
            if (!byName.TryGetValue(t.Name, out var want))
            {
                throw new WeightsFormatException($"Unexpected key '{t.Name}': this architecture's parameters are {Describe(expected, own)}.");
            }

            if (!t.Shape.SequenceEqual(want.Shape))
            {
                throw new WeightsFormatException($"Key '{t.Name}' has shape [{string.Join(", ", t.Shape)}]; this architecture with these channels and classes needs [{string.Join(", ", want.Shape)}].");
            }

            if (!found.TryAdd(want.Key, t with { Name = want.Key }))
            {
                throw new WeightsFormatException($"Key '{t.Name}' appears twice (under two naming schemes).");
            }
        }

        foreach (var (key, ownKey, _) in expected)
        {
            if (!found.ContainsKey(key))
            {
                throw new WeightsFormatException($"Missing key '{(own ? ownKey : key)}'.");
            }
        }

        if (found.Values.Any(t => t.Values.Any(v => !float.IsFinite(v))))
        {
            var bad = found.Values.First(t => t.Values.Any(v => !float.IsFinite(v)));
            throw new WeightsFormatException($"Key '{bad.Name}' holds NaN or infinite values.");
        }

        return expected.Select(e => found[e.Key]).ToArray();
    }

    private static string Describe((string Key, string OwnKey, long[] Shape)[] expected, bool own)
    {
        var names = expected.Select(e => own ? e.OwnKey : e.Key).ToArray();
        return $"{names[0]}, {names[1]}, … {names[^1]} ({names.Length} tensors)";
    }
}
