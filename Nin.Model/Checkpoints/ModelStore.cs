using System.Text.Json;
using System.Text.RegularExpressions;
using Nin.Model.Network;

namespace Nin.Model.Checkpoints;

/// <summary>A model version in the store.</summary>
public sealed record ModelVersionInfo(string Name, int Version, string Directory, ModelMetadata Metadata, bool Active);

/// <summary>Which version is served.</summary>
public sealed record ActiveModel(string Name, int Version);

/// <summary>A version folder whose checkpoint cannot be read (a garbled <c>model.json</c>, missing weights), with the reason.</summary>
public sealed record DamagedVersion(string Name, int Version, string Reason);

/// <summary>
/// Versions of trained NiNs on disk: <c>{root}/{name}/{version}/</c> checkpoints, and a pointer naming the served one
/// (<c>active.json</c> by default; a shared record when several processes share the folder). Safe for concurrent use;
/// writes are atomic renames, and a version number taken by another process at the same moment is skipped.
/// </summary>
public sealed partial class ModelStore
{
    private readonly Lock gate = new();
    private readonly IActiveModelPointer pointer;

    public ModelStore(string root, IActiveModelPointer? pointer = null)
    {
        Root = Directory.CreateDirectory(root).FullName;
        this.pointer = pointer ?? new ActiveModelFile(Root);
        this.pointer.ChangedElsewhere += active => ActiveChanged?.Invoke(active is not null && IsValidName(active.Name) ? active : null);
        RecoverActivePointer();
    }

    public string Root { get; }

    /// <summary>
    /// What happened to a damaged <c>active.json</c> at start: recovered from <c>.active.history</c> (which version and
    /// why), or still damaged (why, and that no version is served until one is activated). Null when it was fine.
    /// </summary>
    public string? ActivePointerReport { get; private set; }

    /// <summary>True when <c>active.json</c> is damaged and could not be recovered.</summary>
    public bool ActivePointerDamaged { get; private set; }

    /// <summary>Raised after the active version changes (or is cleared).</summary>
    public event Action<ActiveModel?>? ActiveChanged;

    /// <summary>Raised after a version is deleted, so whoever holds it loaded lets it go.</summary>
    public event Action<string, int>? VersionDeleted;

    /// <summary>The name rule (<see cref="ModelName"/>).</summary>
    public static bool IsValidName(string? name) => ModelName.IsValid(name);

    /// <summary>
    /// The whole name rule as one regular expression (the pattern and the reserved names), for the OpenAPI document;
    /// a test holds it to <see cref="IsValidName"/>.
    /// </summary>
    public const string NamePatternText = @"^(?!active\.json(\.|$))(?!.*\.tmp$)[a-z0-9][a-z0-9._-]{0,63}$";

    /// <summary>The name rule, as error messages state it.</summary>
    public const string NameRule = ModelName.Rule;

    /// <summary>A name the store uses for its own files beside the model folders.</summary>
    public static bool IsReservedName(string name) => ModelName.IsReserved(name);

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

    /// <summary>All versions of all models, newest first within a name; unreadable folders are listed by <see cref="Damaged"/>.</summary>
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

    /// <summary>Version folders that exist but cannot be read, with the reason; kept as they are, never deleted automatically.</summary>
    public IReadOnlyList<DamagedVersion> Damaged()
    {
        lock (gate)
        {
            var result = new List<DamagedVersion>();
            foreach (var nameDir in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(nameDir);
                if (!IsValidName(name))
                {
                    continue;
                }

                foreach (var version in Versions(nameDir).Order())
                {
                    if (Damage(name, version) is { } reason)
                    {
                        result.Add(new DamagedVersion(name, version, reason));
                    }
                }
            }

            return result;
        }
    }

    /// <summary>Why the version folder cannot be read, or null when it reads (or does not exist).</summary>
    public string? Damage(string name, int version)
    {
        if (!IsValidName(name) || version < 1)
        {
            return null;
        }

        var dir = Path.Combine(Root, name, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!Directory.Exists(dir))
        {
            return null;
        }

        try
        {
            Checkpoint.ReadMetadata(dir);
            return null;
        }
        catch (CheckpointException ex)
        {
            // The reason as people read it: the folder by model and version, not by server path.
            return ex.Message.Replace($"Checkpoint '{dir}': ", "", StringComparison.Ordinal).Replace(dir + Path.DirectorySeparatorChar, "", StringComparison.Ordinal).Replace(dir, $"{name} v{version}", StringComparison.Ordinal);
        }
        catch (IOException ex)
        {
            return $"{Checkpoint.MetadataFile} cannot be read: {ex.Message}";
        }
    }

    /// <summary>
    /// Removes what interrupted writes leave in the store (staging folders and temporary files: <c>*.tmp</c>, version
    /// claims, folders being deleted) last written more than <paramref name="minimumAge"/> ago, and finishes interrupted
    /// folder swaps. Only the store's own temporary names are touched. Returns the paths removed.
    /// </summary>
    public IReadOnlyList<string> SweepTemporary(TimeSpan minimumAge) => TemporaryFiles.Sweep(Root, minimumAge);

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

    /// <summary>
    /// The number of <see cref="Latest"/>'s version, for the serving path, which asks on every request that names a model
    /// but no version: from a copy checked by one <c>stat</c> of the model's folder (its time stamp moves when a version
    /// is added or removed, by any process) and at most <see cref="ActiveModelFile.MaxCacheAge"/> old, instead of listing
    /// the folder and parsing each candidate's <c>model.json</c> under the store's lock.
    /// </summary>
    public int? LatestVersion(string name)
    {
        if (!IsValidName(name))
        {
            return null;
        }

        // Stamped before the folder is read: a version added meanwhile moves the stamp, so the next call reads again.
        var written = Directory.GetLastWriteTimeUtc(Path.Combine(Root, name));
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        lock (gate)
        {
            if (latestVersions.TryGetValue(name, out var hit) && hit.Written == written
                && System.Diagnostics.Stopwatch.GetElapsedTime(hit.ReadAt, now) < ActiveModelFile.MaxCacheAge)
            {
                return hit.Version;
            }
        }

        var version = Latest(name)?.Version;
        lock (gate)
        {
            latestVersions[name] = (version, written, now);
        }

        return version;
    }

    private readonly Dictionary<string, (int? Version, DateTime Written, long ReadAt)> latestVersions = new(StringComparer.Ordinal);

    private void ForgetLatest(string name)
    {
        lock (gate)
        {
            latestVersions.Remove(name);
        }
    }

    /// <summary>
    /// Saves <paramref name="network"/> as the next version of <paramref name="metadata"/>'s name. It becomes the served
    /// version when <paramref name="activate"/>, or when nothing is served yet and <paramref name="activateIfNoneActive"/>.
    /// </summary>
    public ModelVersionInfo Add(ImageClassifier network, ModelMetadata metadata, bool activate, bool activateIfNoneActive = true)
    {
        if (!IsValidName(metadata.Name))
        {
            throw new ArgumentException($"Model name '{metadata.Name}' is not valid: {NameRule}.");
        }

        lock (gate)
        {
            var namePath = Path.Combine(Root, metadata.Name);
            var newName = !Directory.Exists(namePath);
            var nameDir = Directory.CreateDirectory(namePath).FullName;
            int version;
            string dir;
            ModelMetadata saved;
            try
            {
                (version, dir, saved) = SaveNextVersion(network, metadata, nameDir);
            }
            catch when (newName)
            {
                TemporaryFiles.DeleteIfEmpty(nameDir); // a first version that could not be written leaves no empty model behind
                throw;
            }

            latestVersions.Remove(metadata.Name);
            var becomeActive = activate || (activateIfNoneActive && ReadActive() is null);
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

    // Another process sharing the folder may take the same number at the same moment: a number is claimed by creating
    // its claim file exclusively (O_EXCL), so each process saves under a number no other one holds.
    private static (int Version, string Directory, ModelMetadata Saved) SaveNextVersion(ImageClassifier network, ModelMetadata metadata, string nameDir)
    {
        var version = Versions(nameDir).DefaultIfEmpty(0).Max() + 1;
        while (true)
        {
            var text = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var claim = Path.Combine(nameDir, $".{text}.claim.tmp");
            var dir = Path.Combine(nameDir, text);
            try
            {
                using (new FileStream(claim, FileMode.CreateNew, FileAccess.Write))
                {
                }
            }
            catch (IOException) when (File.Exists(claim))
            {
                version++;
                continue;
            }

            try
            {
                if (Directory.Exists(dir))
                {
                    version++;
                    continue;
                }

                return (version, dir, Checkpoint.Save(network, metadata with { Version = version }, dir));
            }
            finally
            {
                File.Delete(claim);
            }
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
                // A staging folder of its own: replicas seeding one shared store at the same moment do not collide.
                var staging = target + $".import-{Guid.NewGuid():N}.tmp";
                Directory.CreateDirectory(staging);
                try
                {
                    foreach (var file in Directory.EnumerateFiles(checkpointDir))
                    {
                        File.Copy(file, Path.Combine(staging, Path.GetFileName(file)), overwrite: true);
                    }

                    DurableFile.FlushTree(staging);
                    Directory.Move(staging, target);
                    DurableFile.FlushDirectory(Path.GetDirectoryName(target)!);
                }
                catch (IOException) when (Directory.Exists(target))
                {
                    // another process imported it first
                }
                finally
                {
                    if (Directory.Exists(staging))
                    {
                        Directory.Delete(staging, recursive: true);
                    }
                }
            }

            if (activate)
            {
                WriteActive(new ActiveModel(metadata.Name, metadata.Version));
            }
        }

        ForgetLatest(metadata.Name);
        if (activate)
        {
            ActiveChanged?.Invoke(new ActiveModel(metadata.Name, metadata.Version));
        }

        return Find(metadata.Name, metadata.Version)!;
    }

    /// <summary>Makes a version the served one. Returns false if it does not exist.</summary>
    public bool Activate(string name, int version)
    {
        if (!IsValidName(name) || version < 1)
        {
            return false;
        }

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
        if (!IsValidName(name) || version < 1)
        {
            return DeleteResult.NotFound;
        }

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
        }

        ForgetLatest(name);
        VersionDeleted?.Invoke(name, version);
        return DeleteResult.Deleted;
    }

    // A damaged active.json (empty or garbled after a crash): the last activation in .active.history whose version still
    // reads is written back; without one, the pointer is reported damaged and nothing is picked in its place.
    private void RecoverActivePointer()
    {
        if (pointer is not ActiveModelFile file || file.TryRead(out _, out var damage))
        {
            return;
        }

        var recovered = file.History().LastOrDefault(a => IsValidName(a.Name) && TryRead(a.Name, a.Version, null) is not null);
        if (recovered is null)
        {
            ActivePointerDamaged = true;
            ActivePointerReport = $"The active-version pointer is damaged ({damage}) and {ActiveModelFile.HistoryFileName} names no version that still exists: no version is served until one is activated.";
            return;
        }

        file.Write(recovered);
        ActivePointerReport = $"The active-version pointer was damaged ({damage}); recovered {recovered.Name} v{recovered.Version}, the last activation recorded in {ActiveModelFile.HistoryFileName}.";
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

    private ActiveModel? ReadActive() => pointer.Read() is { } active && IsValidName(active.Name) ? active : null;

    private void WriteActive(ActiveModel active)
    {
        pointer.Write(active);
        ActivePointerDamaged = false;
    }
}

public enum DeleteResult
{
    Deleted,
    NotFound,
    Active,
}
