using System.Diagnostics;
using System.Text.Json;

namespace Nin.Model.Checkpoints;

/// <summary>
/// Where the store records which version is served. One process: <see cref="ActiveModelFile"/> (<c>active.json</c> beside
/// the versions). Several processes sharing one store folder: a shared record (Nin.Api keeps it in PostgreSQL and
/// announces changes with LISTEN/NOTIFY), raising <see cref="ChangedElsewhere"/> when another process changes it.
/// </summary>
public interface IActiveModelPointer
{
    /// <summary>The served version as last known; cheap (it is read on every request), so implementations keep a copy.</summary>
    ActiveModel? Read();

    void Write(ActiveModel active);

    /// <summary>Raised when another process changed the served version.</summary>
    event Action<ActiveModel?>? ChangedElsewhere;
}

/// <summary>
/// <c>active.json</c> in the store's folder, replaced durably (fsync, rename, fsync of the folder) on every change, with
/// each change also appended to <c>.active.history</c>: a pointer that a crash or a disk fault left empty or garbled is
/// recovered from the last entry of the history whose version still exists, or else reported as damaged.
/// </summary>
public sealed class ActiveModelFile(string root) : IActiveModelPointer
{
    public const string FileName = "active.json";
    /// <summary>Starts with a dot: never a valid model name, so it cannot collide with a model folder.</summary>
    public const string HistoryFileName = ".active.history";

    public string Path { get; } = System.IO.Path.Combine(root, FileName);

    public string HistoryPath { get; } = System.IO.Path.Combine(root, HistoryFileName);

    public event Action<ActiveModel?>? ChangedElsewhere
    {
        add { }
        remove { }
    }

    /// <summary>
    /// The pointer, re-read only when the file's size or time stamp changed (one <c>stat</c> instead of an open, a read
    /// and a JSON parse on every request), or when the copy is older than <see cref="MaxCacheAge"/>: an edit by another
    /// process within one tick of a coarse file-system clock, at the same size, is still seen within that time.
    /// </summary>
    public ActiveModel? Read()
    {
        var file = new FileInfo(Path);
        if (!file.Exists)
        {
            cached = null;
            return null;
        }

        var stamp = (file.LastWriteTimeUtc, file.Length);
        var now = Stopwatch.GetTimestamp();
        if (cached is { } hit && hit.Stamp == stamp && Stopwatch.GetElapsedTime(hit.ReadAt, now) < MaxCacheAge)
        {
            return hit.Active;
        }

        if (!TryRead(out var active, out _))
        {
            cached = null;
            return null;
        }

        cached = new Cached(active, stamp, now);
        return active;
    }

    /// <summary>Longest time <see cref="Read"/> answers from its copy while the file's size and time stamp stay the same.</summary>
    public static readonly TimeSpan MaxCacheAge = TimeSpan.FromSeconds(1);

    private sealed record Cached(ActiveModel? Active, (DateTime Written, long Length) Stamp, long ReadAt);

    private volatile Cached? cached;

    /// <summary>
    /// Reads the pointer: true with <paramref name="active"/> (null when there is none); false when the file exists but
    /// cannot be read, with the reason in <paramref name="damage"/>.
    /// </summary>
    public bool TryRead(out ActiveModel? active, out string? damage)
    {
        active = null;
        damage = null;
        if (!File.Exists(Path))
        {
            return true;
        }

        try
        {
            var text = File.ReadAllText(Path);
            if (text.Length == 0)
            {
                damage = $"{FileName} is empty (0 bytes: cut short by a crash or power cut)";
                return false;
            }

            active = JsonSerializer.Deserialize<ActiveModel>(text, ModelMetadata.JsonOptions);
            if (active is null || string.IsNullOrWhiteSpace(active.Name) || active.Version < 1)
            {
                active = null;
                damage = $"{FileName} names no model version";
                return false;
            }

            return true;
        }
        catch (JsonException ex)
        {
            damage = $"{FileName} is not valid JSON: {ex.Message}";
            return false;
        }
        catch (IOException ex)
        {
            damage = $"{FileName} cannot be read: {ex.Message}";
            return false;
        }
    }

    public void Write(ActiveModel active)
    {
        DurableFile.WriteText(Path, JsonSerializer.Serialize(active, ModelMetadata.JsonOptions));
        cached = null; // this process's own change is read back at once, whatever the file system's clock says
        AppendHistory(active);
    }

    /// <summary>The activations recorded in <c>.active.history</c>, newest last; unreadable lines (a torn last append) are skipped.</summary>
    public IReadOnlyList<ActiveModel> History()
    {
        if (!File.Exists(HistoryPath))
        {
            return [];
        }

        var entries = new List<ActiveModel>();
        foreach (var line in File.ReadLines(HistoryPath))
        {
            try
            {
                if (JsonSerializer.Deserialize<ActiveModel>(line, ModelMetadata.JsonOptions) is { Version: > 0 } entry && !string.IsNullOrWhiteSpace(entry.Name))
                {
                    entries.Add(entry);
                }
            }
            catch (JsonException)
            {
            }
        }

        return entries;
    }

    private void AppendHistory(ActiveModel active)
    {
        try
        {
            using var stream = new FileStream(HistoryPath, FileMode.Append, FileAccess.Write, FileShare.Read);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(active, ModelMetadata.CompactJsonOptions) + "\n"));
            stream.Flush(flushToDisk: true);
        }
        catch (IOException)
        {
            // The pointer itself is written; only its recovery after a later crash would miss this entry.
        }
    }
}
