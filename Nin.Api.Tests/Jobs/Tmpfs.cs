using System.Diagnostics;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// A small tmpfs mounted for one test (the tests run as root, inside ./nin's root when the host needs one), unmounted
/// and removed on dispose even when the test failed. <see cref="Fill"/> takes all but a few bytes of it.
/// </summary>
internal sealed class Tmpfs : IDisposable
{
    private Tmpfs(string path) => Path = path;

    public string Path { get; }

    public static Tmpfs Mount(long bytes)
    {
        var path = Directory.CreateTempSubdirectory("nin-tmpfs-").FullName;
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes / 1024}k,mode=0777", "tmpfs", path);
        if (code != 0)
        {
            Directory.Delete(path);
            throw new InvalidOperationException($"Could not mount a tmpfs (these tests need root): mount exited {code}: {output}");
        }

        return new Tmpfs(path);
    }

    public long Free => new DriveInfo(Path).AvailableFreeSpace;

    /// <summary>Writes a filler file until the file system is full, then gives back <paramref name="leave"/> bytes.</summary>
    public string Fill(long leave = 0)
    {
        var filler = System.IO.Path.Combine(Path, "filler.bin");
        var chunk = new byte[64 * 1024];
        using (var stream = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.WriteThrough))
        {
            try
            {
                while (true)
                {
                    stream.Write(chunk);
                }
            }
            catch (IOException)
            {
            }
        }

        if (leave > 0)
        {
            using var stream = new FileStream(filler, FileMode.Open, FileAccess.Write);
            stream.SetLength(Math.Max(0, stream.Length - leave));
        }

        return filler;
    }

    public void Dispose()
    {
        Run("umount", "-l", Path);
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
