namespace Nin.Model.Checkpoints;

/// <summary>
/// What interrupted writes leave behind in the store and job folders: temporary files and staging folders
/// (<c>*.tmp</c>: <see cref="DurableFile"/>'s temporaries, <see cref="AtomicDirectory"/>'s staging, version claims, import
/// staging, ONNX and evaluation temporaries) and folders caught mid-deletion (<c>*.deleted-*</c>); a swap interrupted
/// between its two renames (<c>.{name}.previous</c>) is finished instead. Nothing else is ever touched.
/// </summary>
public static class TemporaryFiles
{
    private const int MaxDepth = 4;

    public static bool IsTemporary(string name) =>
        name.EndsWith(".tmp", StringComparison.Ordinal) || name.Contains(".deleted-", StringComparison.Ordinal);

    /// <summary>Removes temporaries under <paramref name="root"/> last written more than <paramref name="minimumAge"/> ago; returns their paths.</summary>
    public static IReadOnlyList<string> Sweep(string root, TimeSpan minimumAge)
    {
        var removed = new List<string>();
        if (Directory.Exists(root))
        {
            Sweep(new DirectoryInfo(root), DateTime.UtcNow - minimumAge, removed, 0);
        }

        return removed;
    }

    private static void Sweep(DirectoryInfo dir, DateTime before, List<string> removed, int depth)
    {
        FileSystemInfo[] entries;
        try
        {
            entries = dir.GetFileSystemInfos();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }

        foreach (var entry in entries)
        {
            try
            {
                if (IsTemporary(entry.Name))
                {
                    if (entry.LastWriteTimeUtc <= before)
                    {
                        if (entry is DirectoryInfo d)
                        {
                            d.Delete(recursive: true);
                        }
                        else
                        {
                            entry.Delete();
                        }

                        removed.Add(entry.FullName);
                    }
                }
                else if (entry is DirectoryInfo sub)
                {
                    if (sub.Name.StartsWith('.') && sub.Name.EndsWith(".previous", StringComparison.Ordinal))
                    {
                        var target = Path.Combine(dir.FullName, sub.Name[1..^".previous".Length]);
                        if (sub.LastWriteTimeUtc <= before)
                        {
                            AtomicDirectory.Recover(target);
                            removed.Add(sub.FullName);
                        }
                    }
                    else if (depth < MaxDepth)
                    {
                        Sweep(sub, before, removed, depth + 1);
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // In use or already gone: the next start tries again.
            }
        }
    }

    /// <summary>Deletes <paramref name="dir"/> if it exists and holds nothing.</summary>
    public static void DeleteIfEmpty(string dir)
    {
        try
        {
            if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
            {
                Directory.Delete(dir);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
