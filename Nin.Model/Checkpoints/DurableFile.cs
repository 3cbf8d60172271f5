using System.Runtime.InteropServices;
using System.Text;

namespace Nin.Model.Checkpoints;

/// <summary>
/// Writes that survive a crash or a power cut: the content goes to a temporary file beside the target, is flushed to the
/// disk (fsync), renamed over the target, and the folder is flushed so the rename itself is durable. A reader sees the old
/// file or the new one, never a truncated one; a write that fails (a full disk) removes its temporary file and leaves
/// the target as it was.
/// </summary>
public static partial class DurableFile
{
    public static void WriteText(string path, string text) => Write(path, Encoding.UTF8.GetBytes(text));

    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        var temp = path + $".{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }

        FlushDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Flushes a file written by someone else (e.g. TorchSharp's <c>save</c>) to the disk.</summary>
    public static void Flush(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Flushes every file under <paramref name="directory"/>, then the folders themselves (names and renames in them).</summary>
    public static void FlushTree(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            Flush(file);
        }

        foreach (var dir in Directory.EnumerateDirectories(directory, "*", SearchOption.AllDirectories))
        {
            FlushDirectory(dir);
        }

        FlushDirectory(directory);
    }

    /// <summary>fsync of a folder, so the names created or renamed in it are on the disk (Linux; elsewhere a no-op).</summary>
    public static void FlushDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            return; // gone or not readable: nothing of ours to make durable
        }

        try
        {
            _ = Fsync(fd);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Whether <paramref name="exception"/> (or its cause) is a write refused for want of space (ENOSPC, EDQUOT).</summary>
    public static bool IsDiskFull(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is IOException io && (io.HResult is 28 or 122 || (io.HResult & 0xFFFF) == 0x70 /* ERROR_DISK_FULL */
                || io.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
                || io.Message.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }

            // TorchSharp reports a failed native write as its own exception with the C library's message.
            if (e.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

/// <summary>Free space where a folder lives, and the error a write gets when there is not enough of it.</summary>
public static class DiskSpace
{
    /// <summary>Bytes free for this process on the file system holding <paramref name="path"/> (its nearest existing folder).</summary>
    public static long Free(string path)
    {
        var existing = Path.GetFullPath(path);
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
        {
            existing = parent;
        }

        return new DriveInfo(existing).AvailableFreeSpace;
    }

    /// <summary>Throws <see cref="InsufficientStorageException"/> unless <paramref name="needed"/> bytes are free where <paramref name="path"/> lives.</summary>
    public static void Ensure(string path, long needed, string what)
    {
        var free = Free(path);
        if (free < needed)
        {
            throw new InsufficientStorageException(what, path, needed, free);
        }
    }
}

/// <summary>
/// A write that does not fit: what was being written, where, how many bytes it needed (as far as known before writing)
/// and how many were free. Nothing was left behind and nothing that existed was changed.
/// </summary>
public sealed class InsufficientStorageException : IOException
{
    public InsufficientStorageException(string what, string path, long needed, long free, Exception? inner = null)
        : base($"Not enough disk space for {what}: it needs about {Format(needed)}, {Format(free)} free.", inner)
    {
        What = what;
        Path = path;
        Needed = needed;
        Free = free;
        HResult = 28; // ENOSPC, as a raw write would have said
    }

    public string What { get; }

    /// <summary>The folder written to (for logs; clients see it by role).</summary>
    public string Path { get; }

    public long Needed { get; }

    public long Free { get; }

    /// <summary>Wraps a raw ENOSPC failure of a write whose size was estimated at <paramref name="needed"/>.</summary>
    public static InsufficientStorageException From(Exception raw, string what, string path, long needed) =>
        raw as InsufficientStorageException ?? new InsufficientStorageException(what, path, needed, SafeFree(path), raw);

    private static long SafeFree(string path)
    {
        try
        {
            return DiskSpace.Free(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return 0;
        }
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => FormattableString.Invariant($"{bytes / (double)(1L << 30):F1} GiB"),
        >= 1L << 20 => FormattableString.Invariant($"{bytes / (double)(1L << 20):F1} MiB"),
        >= 1L << 10 => FormattableString.Invariant($"{bytes / (double)(1L << 10):F0} KiB"),
        _ => FormattableString.Invariant($"{bytes} bytes"),
    };
}
