using System.Runtime.InteropServices;

namespace Nin.Model.Checkpoints;

/// <summary>
/// Replaces a folder's whole content at once: the new content is written into a fresh sibling folder, flushed to the
/// disk (files, then folders), and swapped in, so a reader (or a restart after a crash or power cut) finds the old
/// folder or the new one, complete, at every instant.
/// </summary>
/// <remarks>
/// On Linux the swap is one <c>renameat2(RENAME_EXCHANGE)</c>: the target name never disappears. Where a file system
/// cannot exchange, the old folder is first renamed to <c>.{name}.previous</c> and the new one moved in; for the moment
/// between the two renames only the previous folder exists, and <see cref="Recover"/> (which readers call) moves it back.
/// </remarks>
public static partial class AtomicDirectory
{
    private const int AtFdCwd = -100;
    private const uint RenameExchange = 2;

    public static T Replace<T>(string directory, Func<string, T> fill)
    {
        var full = Path.GetFullPath(directory);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        Recover(full);
        var staging = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            var result = fill(staging);
            DurableFile.FlushTree(staging);
            if (!Directory.Exists(full))
            {
                Directory.Move(staging, full);
            }
            else if (Exchange(staging, full))
            {
                // staging now holds the old content.
                Directory.Delete(staging, recursive: true);
            }
            else
            {
                var previous = PreviousOf(full);
                if (Directory.Exists(previous))
                {
                    Directory.Delete(previous, recursive: true);
                }

                Directory.Move(full, previous);
                DurableFile.FlushDirectory(parent);
                Directory.Move(staging, full);
                DurableFile.FlushDirectory(parent);
                Directory.Delete(previous, recursive: true);
            }

            DurableFile.FlushDirectory(parent);
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

    /// <summary>
    /// After a crash between the two renames of the fallback swap: puts the previous folder back when the folder itself is
    /// missing, or removes it when the new one is complete. Returns whether the folder exists.
    /// </summary>
    public static bool Recover(string directory)
    {
        var full = Path.GetFullPath(directory);
        var previous = PreviousOf(full);
        if (Directory.Exists(previous))
        {
            if (Directory.Exists(full))
            {
                Directory.Delete(previous, recursive: true);
            }
            else
            {
                Directory.Move(previous, full);
            }
        }

        return Directory.Exists(full);
    }

    /// <summary>Whether this platform and file system swap two folders in one step (tests check the fallback too).</summary>
    public static bool ExchangeSupported { get; set; } = OperatingSystem.IsLinux();

    private static string PreviousOf(string full) => Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.previous");

    private static bool Exchange(string a, string b)
    {
        if (!ExchangeSupported)
        {
            return false;
        }

        try
        {
            return RenameAt2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            ExchangeSupported = false; // a C library without renameat2
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "renameat2", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);
}
