using System.Globalization;
using System.Text.Json;

namespace Nin.Model.Experiments;

/// <summary>How a searched setting's values are read and drawn.</summary>
public enum ParameterKind
{
    Number,
    Integer,
    Text,
    Boolean,
}

/// <summary>
/// One searched setting: a list of <see cref="Values"/> (grid and random search), or a range <see cref="Min"/>–<see cref="Max"/>
/// drawn uniformly, or log-uniformly with <see cref="Log"/> (random search only; numbers and integers only).
/// </summary>
public sealed record SearchParameter(string Name, ParameterKind Kind, IReadOnlyList<JsonElement>? Values, double? Min = null, double? Max = null, bool Log = false)
{
    public bool IsRange => Values is null;
}

/// <summary>The settings of one trial: name → value, in the order the space names them.</summary>
public sealed record TrialParameters(int Trial, IReadOnlyDictionary<string, JsonElement> Values);

/// <summary>Grid search (every combination, in order) or random search (seeded draws) over a set of parameters.</summary>
public static class SearchSpace
{
    public const int MaxValuesPerParameter = 100;

    /// <summary>How many trials a grid over <paramref name="parameters"/> has (saturating at int.MaxValue).</summary>
    public static int GridSize(IReadOnlyList<SearchParameter> parameters)
    {
        long size = 1;
        foreach (var p in parameters)
        {
            size = Math.Min(int.MaxValue, size * Math.Max(1, p.Values?.Count ?? 1));
        }

        return (int)size;
    }

    /// <summary>Every combination of the parameters' values, the last parameter varying fastest; trials numbered from 1.</summary>
    public static IReadOnlyList<TrialParameters> Grid(IReadOnlyList<SearchParameter> parameters)
    {
        if (parameters.Any(p => p.IsRange))
        {
            throw new ArgumentException("A grid needs a list of values for every parameter.", nameof(parameters));
        }

        IEnumerable<IReadOnlyList<(string, JsonElement)>> combos = [[]];
        foreach (var p in parameters)
        {
            var values = p.Values!;
            combos = combos.SelectMany(c => values.Select(v => (IReadOnlyList<(string, JsonElement)>)[.. c, (p.Name, v)]));
        }

        return [.. combos.Select((c, i) => new TrialParameters(i + 1, c.ToDictionary(x => x.Item1, x => x.Item2)))];
    }

    /// <summary><paramref name="trials"/> seeded draws: a value from a list, or a uniform (log-uniform) point of a range.</summary>
    public static IReadOnlyList<TrialParameters> Random(IReadOnlyList<SearchParameter> parameters, int trials, long seed)
    {
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var result = new List<TrialParameters>(trials);
        for (var t = 1; t <= trials; t++)
        {
            var values = new Dictionary<string, JsonElement>();
            foreach (var p in parameters)
            {
                values[p.Name] = p.Values is { } list ? list[random.Next(list.Count)] : Draw(p, random);
            }

            result.Add(new TrialParameters(t, values));
        }

        return result;
    }

    private static JsonElement Draw(SearchParameter p, Random random)
    {
        var (min, max) = (p.Min!.Value, p.Max!.Value);
        var u = random.NextDouble();
        var x = p.Log ? Math.Exp(Math.Log(min) + (u * (Math.Log(max) - Math.Log(min)))) : min + (u * (max - min));
        return p.Kind == ParameterKind.Integer
            ? JsonSerializer.SerializeToElement((long)Math.Clamp(Math.Round(x), Math.Ceiling(min), Math.Floor(max)))
            : JsonSerializer.SerializeToElement(double.Parse(x.ToString("G6", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));
    }

    /// <summary>What is wrong with a parameter's definition, or null: kinds of values, ranges, sizes.</summary>
    public static string? Problem(SearchParameter p, bool grid)
    {
        if (p.Values is { } values)
        {
            if (p.Min is not null || p.Max is not null)
            {
                return "give either values or min and max, not both.";
            }

            if (values.Count is 0 or > MaxValuesPerParameter)
            {
                return $"values must list 1 to {MaxValuesPerParameter} values; got {values.Count}.";
            }

            var wrong = values.FirstOrDefault(v => !Fits(p.Kind, v));
            return wrong.ValueKind == JsonValueKind.Undefined ? null : $"{Describe(wrong)} is not a{(p.Kind == ParameterKind.Integer ? "n" : "")} {KindName(p.Kind)}.";
        }

        if (grid)
        {
            return "a grid needs a list of values (min and max are for random search).";
        }

        if (p.Kind is not (ParameterKind.Number or ParameterKind.Integer))
        {
            return $"a {KindName(p.Kind)} takes a list of values, not a range.";
        }

        if (p.Min is not { } min || p.Max is not { } max || !double.IsFinite(min) || !double.IsFinite(max) || min > max)
        {
            return "a range needs finite min and max with min ≤ max.";
        }

        if (p.Log && min <= 0)
        {
            return "a log range needs min > 0.";
        }

        return p.Kind == ParameterKind.Integer && Math.Ceiling(min) > Math.Floor(max) ? "the range holds no integer." : null;
    }

    private static bool Fits(ParameterKind kind, JsonElement v) => kind switch
    {
        ParameterKind.Number => v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()),
        ParameterKind.Integer => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out _),
        ParameterKind.Text => v.ValueKind == JsonValueKind.String,
        ParameterKind.Boolean => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
        _ => false,
    };

    private static string KindName(ParameterKind kind) => kind switch
    {
        ParameterKind.Number => "number",
        ParameterKind.Integer => "integer",
        ParameterKind.Text => "string",
        _ => "boolean",
    };

    private static string Describe(JsonElement v)
    {
        var text = v.GetRawText();
        return text.Length > 40 ? text[..40] + "…" : text;
    }
}
