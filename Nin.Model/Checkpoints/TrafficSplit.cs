using System.Text.Json;

namespace Nin.Model.Checkpoints;

/// <summary>One version's share of a model's traffic (weights are relative; they need not add up to 100).</summary>
public sealed record TrafficRoute(int Version, double Weight);

/// <summary>
/// How requests for a model name (without a version) are shared between its versions — a canary (e.g. 90/10) — and which
/// version, if any, shadows them: it receives a copy of every request, whose answer is compared, counted and never
/// returned. Kept in the store's folder as <c>{name}/traffic.json</c>, so every replica sharing the folder applies it.
/// </summary>
public sealed record TrafficSplit(IReadOnlyList<TrafficRoute> Routes, int? Shadow, DateTimeOffset Updated)
{
    public const string FileName = "traffic.json";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The version for a point <paramref name="u"/> in [0, 1): the routes laid end to end by weight.</summary>
    public int Pick(double u)
    {
        var total = Routes.Sum(r => r.Weight);
        var at = u * total;
        foreach (var route in Routes)
        {
            if (at < route.Weight)
            {
                return route.Version;
            }

            at -= route.Weight;
        }

        return Routes[^1].Version;
    }

    /// <summary>A stable point in [0, 1) for a client's key (FNV-1a of the model name and the key): the same key gets the same version everywhere.</summary>
    public static double Point(string model, string key)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in model + "\n" + key)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        hash ^= hash >> 33; // FNV's low bits mix poorly; fold the high ones in before scaling
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return (hash >> 11) * (1.0 / (1UL << 53));
    }

    public static string PathFor(string storeRoot, string name) => System.IO.Path.Combine(storeRoot, name, FileName);

    /// <summary>The model's split, or null when it has none (or the file cannot be read: then its versions serve as without one).</summary>
    public static TrafficSplit? Read(string storeRoot, string name)
    {
        try
        {
            var split = JsonSerializer.Deserialize<TrafficSplit>(File.ReadAllBytes(PathFor(storeRoot, name)), Json);
            return split is { Routes.Count: > 0 } ? split : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>Replaces the model's split durably (a crash leaves the old one or the new one, never half of it).</summary>
    public static void Write(string storeRoot, string name, TrafficSplit split) =>
        DurableFile.Write(PathFor(storeRoot, name), JsonSerializer.SerializeToUtf8Bytes(split, Json));

    /// <summary>Removes the model's split: its active (or newest) version takes all requests again. False when it had none.</summary>
    public static bool Delete(string storeRoot, string name)
    {
        var path = PathFor(storeRoot, name);
        if (!File.Exists(path))
        {
            return false;
        }

        File.Delete(path);
        DurableFile.FlushDirectory(System.IO.Path.GetDirectoryName(path)!);
        return true;
    }
}
