namespace Nin.Model.Checkpoints;

/// <summary>
/// Replaces a folder's whole content at once: the new content is written into a fresh sibling folder and
/// swapped in by renames, so a reader (or a restart after a crash) sees the old folder or the new one, never a mix.
/// </summary>
public static class AtomicDirectory
{
    public static T Replace<T>(string directory, Func<string, T> fill)
    {
        var full = Path.GetFullPath(directory);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            var result = fill(staging);
            if (Directory.Exists(full))
            {
                var old = staging + ".old";
                Directory.Move(full, old);
                Directory.Move(staging, full);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(staging, full);
            }

            return result;
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }
}
