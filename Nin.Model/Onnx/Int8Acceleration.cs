using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Nin.Model.Onnx;

/// <summary>
/// Whether this CPU has the 8-bit dot-product instructions that make ONNX Runtime's integer convolutions faster than
/// fp32: AVX-512 VNNI or AVX-VNNI on x86-64, the dot-product extension (<c>asimddp</c>) on ARM64. Without them the
/// u8·s8 kernels fall back to 16-bit multiply-adds that gain little or nothing, so <c>auto</c> keeps fp32 there.
/// </summary>
public sealed record Int8Acceleration(string? Instructions)
{
    /// <summary>This machine's (read once: <c>/proc/cpuinfo</c>'s flags on Linux, the runtime's intrinsics elsewhere).</summary>
    public static Int8Acceleration Current { get; } = Detect();

    /// <summary>A CPU without them (what <c>auto</c> does there).</summary>
    public static Int8Acceleration None { get; } = new((string?)null);

    public bool Available => Instructions is not null;

    /// <summary>In words, for <c>/health/live</c>.</summary>
    public string Describe() => Instructions is { } i
        ? $"{i}: ONNX Runtime's int8 convolutions run several times faster than fp32"
        : "no AVX-512 VNNI, AVX-VNNI or ARM dot product: int8 convolutions gain little over fp32 on this CPU";

    internal static Int8Acceleration FromCpuInfo(string cpuinfo)
    {
        var flags = cpuinfo.Split('\n')
            .Where(l => l.StartsWith("flags", StringComparison.Ordinal) || l.StartsWith("Features", StringComparison.Ordinal))
            .SelectMany(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToHashSet(StringComparer.Ordinal);
        string? found = flags.Contains("avx512_vnni") ? "AVX-512 VNNI"
            : flags.Contains("avx_vnni") ? "AVX-VNNI"
            : flags.Contains("asimddp") ? "ARM dot product"
            : null;
        return new Int8Acceleration(found);
    }

    private static Int8Acceleration Detect()
    {
        try
        {
            if (OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo"))
            {
                return FromCpuInfo(File.ReadAllText("/proc/cpuinfo"));
            }
        }
        catch (IOException)
        {
        }

        return RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 when AvxVnni.IsSupported => new("AVX-VNNI"),
            Architecture.Arm64 when System.Runtime.Intrinsics.Arm.Dp.IsSupported => new("ARM dot product"),
            _ => None,
        };
    }
}
