using System.Text.Json;
using System.Text.RegularExpressions;
using Nin.Model.Network;

namespace Nin.Model.Checkpoints;

/// <summary>A model version in the store.</summary>
public sealed record ModelVersionInfo(string Name, int Version, string Directory, ModelMetadata Metadata, bool Active);

/// <summary>Which version is served.</summary>
public sealed record ActiveModel(string Name, int Version);

/// <summary>
/// Versions of trained NiNs on disk: <c>{root}/{name}/{version}/</c> checkpoints plus <c>active.json</c>
/// naming the served one. Safe for concurrent use within one process; writes are atomic renames.
/// </summary>
public sealed partial class ModelStore
{
    private const string ActiveFile = "active.json";
    private readonly Lock gate = new();

    public ModelStore(string root)
    {
        Root = Directory.CreateDirectory(root).FullName;
    }

    public string Root { get; }

    /// <summary>Raised after the active version changes (or is cleared).</summary>
    public event Action<ActiveModel?>? ActiveChanged;

    public static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name);

    public ActiveModel? Active
    {
        get
        {
            lock (gate)
            {
                return ReadActive();
            }
        }
    }

    /// <summary>All versions of all models, newest first within a name; unreadable folders are skipped.</summary>
    public IReadOnlyList<ModelVersionInfo> List()
    {
        lock (gate)
        {
            var active = ReadActive();
            var result = new List<ModelVersionInfo>();
            foreach (var nameDir in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(nameDir);
                if (!IsValidName(name))
                {
                    continue;
                }

                foreach (var version in Versions(nameDir).OrderDescending())
                {
                    if (TryRead(name, version, active) is { } info)
                    {
                        result.Add(info);
                    }
                }
            }

            return result;
        }
    }

    public ModelVersionInfo? Find(string name, int version)
    {
        if (!IsValidName(name) || version < 1)
        {
            return null;
        }

        lock (gate)
        {
            return TryRead(name, version, ReadActive());
        }
    }

    /// <summary>The highest version of <paramref name="name"/>, or null.</summary>
    public ModelVersionInfo? Latest(string name)
    {
        if (!IsValidName(name))
        {
            return null;
        }

        lock (gate)
        {
            var dir = Path.Combine(Root, name);
            var active = ReadActive();
            return Directory.Exists(dir)
                ? Versions(dir).OrderDescending().Select(v => TryRead(name, v, active)).FirstOrDefault(i => i is not null)
                : null;
        }
    }

    /// <summary>Saves <paramref name="network"/> as the next version of <paramref name="metadata"/>'s name.</summary>
    public ModelVersionInfo Add(ImageClassifier network, ModelMetadata metadata, bool activate)
    {
        if (!IsValidName(metadata.Name))
        {
            throw new ArgumentException($"Model name '{metadata.Name}' is not valid: use 1–64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.");
        }

        lock (gate)
        {
            var nameDir = Directory.CreateDirectory(Path.Combine(Root, metadata.Name)).FullName;
            var version = Versions(nameDir).DefaultIfEmpty(0).Max() + 1;
            var dir = Path.Combine(nameDir, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var saved = Checkpoint.Save(network, metadata with { Version = version }, dir);
            var becomeActive = activate || ReadActive() is null;
            if (becomeActive)
            {
                WriteActive(new ActiveModel(metadata.Name, version));
            }

            var info = new ModelVersionInfo(metadata.Name, version, dir, saved, becomeActive);
            if (becomeActive)
            {
                ActiveChanged?.Invoke(new ActiveModel(metadata.Name, version));
            }

            return info;
        }
    }

    /// <summary>Copies a checkpoint folder in as a given version (used to seed the shipped default model).</summary>
    public ModelVersionInfo Import(string checkpointDir, bool activate)
    {
        var metadata = Checkpoint.ReadMetadata(checkpointDir);
        lock (gate)
        {
            var target = Path.Combine(Root, metadata.Name, metadata.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (!Directory.Exists(target))
            {
                var staging = target + ".import";
                Directory.CreateDirectory(staging);
                foreach (var file in Directory.EnumerateFiles(checkpointDir))
                {
                    File.Copy(file, Path.Combine(staging, Path.GetFileName(file)), overwrite: true);
                }

                Directory.Move(staging, target);
            }

            if (activate)
            {
                WriteActive(new ActiveModel(metadata.Name, metadata.Version));
            }
        }

        if (activate)
        {
            ActiveChanged?.Invoke(new ActiveModel(metadata.Name, metadata.Version));
        }

        return Find(metadata.Name, metadata.Version)!;
    }

    /// <summary>Makes a version the served one. Returns false if it does not exist.</summary>
    public bool Activate(string name, int version)
    {
        lock (gate)
        {
            if (TryRead(name, version, null) is null)
            {
                return false;
            }

            WriteActive(new ActiveModel(name, version));
        }

        ActiveChanged?.Invoke(new ActiveModel(name, version));
        return true;
    }

    /// <summary>Deletes a version; refuses the active one.</summary>
    public DeleteResult Delete(string name, int version)
    {
        lock (gate)
        {
            var info = TryRead(name, version, ReadActive());
            if (info is null)
            {
                return DeleteResult.NotFound;
            }

            if (info.Active)
            {
                return DeleteResult.Active;
            }

            var trash = info.Directory + $".deleted-{Guid.NewGuid():N}";
            Directory.Move(info.Directory, trash);
            Directory.Delete(trash, recursive: true);
            return DeleteResult.Deleted;
        }
    }

    private ModelVersionInfo? TryRead(string name, int version, ActiveModel? active)
    {
        var dir = Path.Combine(Root, name, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!Directory.Exists(dir))
        {
            return null;
        }

        try
        {
            var metadata = Checkpoint.ReadMetadata(dir);
            return new ModelVersionInfo(name, version, dir, metadata, active is not null && active.Name == name && active.Version == version);
        }
        catch (CheckpointException)
        {
            return null;
        }
    }

    private static IEnumerable<int> Versions(string nameDir) =>
        Directory.EnumerateDirectories(nameDir)
            .Select(d => int.TryParse(Path.GetFileName(d), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : 0)
            .Where(v => v > 0);

    private ActiveModel? ReadActive()
    {
        var path = Path.Combine(Root, ActiveFile);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var active = JsonSerializer.Deserialize<ActiveModel>(File.ReadAllText(path), ModelMetadata.JsonOptions);
            return active is not null && IsValidName(active.Name) ? active : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void WriteActive(ActiveModel active)
    {
        var path = Path.Combine(Root, ActiveFile);
        var temp = path + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(active, ModelMetadata.JsonOptions));
        File.Move(temp, path, overwrite: true);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();
}

public enum DeleteResult
{
    Deleted,
    NotFound,
    Active,
}
