using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Nin.Model.Runtime;

/// <summary>
/// Finds the real reason libtorch did not load. TorchSharp reports every failure as a missing
/// package reference; the usual causes are an old libstdc++, a missing libtorch, or the wrong backend.
/// </summary>
public static partial class TorchNativeDiagnostics
{
    public static string Explain(Exception original, string? libTorchDir)
    {
        var causes = new List<string>();
        var bridge = FindBridgeLibrary();
        if (bridge is null)
        {
            causes.Add($"The LibTorchSharp native library is not beside the application ({AppContext.BaseDirectory}). Publish for a runtime identifier (e.g. -r linux-x64) or restore the TorchSharp package.");
        }
        else
        {
            var loadError = TryLoad(bridge);
            if (OperatingSystem.IsLinux())
            {
                var needed = HighestGlibcxx(File.ReadAllBytes(bridge));
                var libstdcxx = LoadedLibStdCxx();
                var have = libstdcxx is null ? null : HighestGlibcxx(File.ReadAllBytes(libstdcxx));
                if (needed is not null && have is not null && CompareVersions(needed, have) > 0)
                {
                    causes.Add(
                        $"libLibTorchSharp needs {needed} but this host's libstdc++ ({libstdcxx}) provides only up to {have} (GCC 13's libstdc++ is required). " +
                        "Run through ./nin (it uses a Debian 13 root on such hosts), use the Docker image, or a host with Ubuntu 24.04 / Debian 13.");
                }
            }

            if (loadError is not null && causes.Count == 0)
            {
                var missing = MissingLibrary().Match(loadError);
                if ((missing.Success && missing.Groups[1].Value.Contains("torch", StringComparison.OrdinalIgnoreCase)) || loadError.Contains("c10", StringComparison.Ordinal))
                {
                    causes.Add(TorchRuntime.Backend == "system"
                        ? $"libtorch was not found ({loadError.Trim()}). This build uses the 'system' backend: set NIN_LIBTORCH_DIR to a libtorch lib folder, e.g. a PyTorch install's torch/lib" + (libTorchDir is null ? "." : $" (now '{libTorchDir}').")
                        : $"libtorch was not found ({loadError.Trim()}). The '{TorchRuntime.Backend}' backend package did not deliver its natives: restore again, or build with -p:TorchBackend=system and set NIN_LIBTORCH_DIR.");
                }
                else
                {
                    causes.Add($"The dynamic loader said: {loadError.Trim()}");
                }
            }
        }

        var text = new StringBuilder("Torch could not start: ");
        text.Append(causes.Count > 0 ? string.Join(" ", causes) : original.Message);
        text.Append($" [backend={TorchRuntime.Backend}, TorchSharp {TorchRuntime.TorchSharpVersion}, {RuntimeInformation.OSDescription}, {RuntimeInformation.RuntimeIdentifier}]");
        return text.ToString();
    }

    internal static string? HighestGlibcxx(ReadOnlySpan<byte> binary)
    {
        string? best = null;
        foreach (Match m in GlibcxxVersion().Matches(Encoding.Latin1.GetString(binary)))
        {
            if (best is null || CompareVersions(m.Value, best) > 0)
            {
                best = m.Value;
            }
        }

        return best;
    }

    internal static int CompareVersions(string a, string b)
    {
        var x = a["GLIBCXX_".Length..].Split('.').Select(int.Parse).ToArray();
        var y = b["GLIBCXX_".Length..].Split('.').Select(int.Parse).ToArray();
        for (var i = 0; i < Math.Max(x.Length, y.Length); i++)
        {
            var c = (i < x.Length ? x[i] : 0).CompareTo(i < y.Length ? y[i] : 0);
            if (c != 0)
            {
                return c;
            }
        }

        return 0;
    }

    private static string? FindBridgeLibrary()
    {
        var name = OperatingSystem.IsWindows() ? "LibTorchSharp.dll" : OperatingSystem.IsMacOS() ? "libLibTorchSharp.dylib" : "libLibTorchSharp.so";
        var baseDir = AppContext.BaseDirectory;
        var candidates = new[] { Path.Combine(baseDir, name), Path.Combine(baseDir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", name) }
            .Concat(Directory.Exists(Path.Combine(baseDir, "runtimes"))
                ? Directory.EnumerateFiles(Path.Combine(baseDir, "runtimes"), name, SearchOption.AllDirectories)
                : []);
        return candidates.FirstOrDefault(File.Exists);
    }

    private static string? TryLoad(string path)
    {
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or BadImageFormatException)
        {
            return ex.Message;
        }
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static string? LoadedLibStdCxx()
    {
        try
        {
            var line = File.ReadLines("/proc/self/maps").FirstOrDefault(l => l.Contains("libstdc++.so", StringComparison.Ordinal));
            if (line is not null)
            {
                return line[line.IndexOf('/', StringComparison.Ordinal)..].Trim();
            }
        }
        catch (IOException)
        {
        }

        string[] known = ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/libstdc++.so.6"];
        return known.FirstOrDefault(File.Exists);
    }

    [GeneratedRegex(@"GLIBCXX_\d+\.\d+(\.\d+)?")]
    private static partial Regex GlibcxxVersion();

    [GeneratedRegex(@"(lib[\w\-\.]+\.so[\.\d]*): cannot open shared object file")]
    private static partial Regex MissingLibrary();
}
