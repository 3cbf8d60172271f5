using Nin.Model.Onnx;
using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>The number format a loaded version serves in and why (for <c>/health/live</c> and the log).</summary>
public sealed record PrecisionChoice(string Precision, string Reason);

/// <summary>
/// The <c>Serving:Precision</c> values: <c>fp32</c>; <c>fp16</c> and <c>bf16</c> (TorchSharp); <c>int8</c> (ONNX Runtime,
/// the version's calibrated int8 model when it has one within the accuracy margin); <c>auto</c> (ONNX Runtime: int8 where
/// the CPU has 8-bit dot-product instructions and the version's int8 model qualifies, else fp32).
/// </summary>
public static class ServingPrecision
{
    public const string Fp32 = "fp32";
    public const string Fp16 = "fp16";
    public const string Bf16 = "bf16";
    public const string Int8 = "int8";
    public const string Auto = "auto";

    public static IReadOnlyList<string> Names { get; } = [Fp32, Fp16, Bf16, Int8, Auto];

    /// <summary>What a single version may be set to (<see cref="ServingOptions.VersionPrecision"/>): the ONNX Runtime choices.</summary>
    public static IReadOnlyList<string> VersionNames { get; } = [Fp32, Int8, Auto];

    public static bool IsValid(string? precision) => precision is not null && Names.Contains(Normalize(precision));

    public static bool IsFp32(string? precision) => precision is null || Normalize(precision) == Fp32;

    /// <summary>fp16 or bf16: half precision, which only the TorchSharp engine runs.</summary>
    public static bool IsHalf(string? precision) => precision is not null && Normalize(precision) is Fp16 or Bf16;

    /// <summary>int8 or auto: asks for ONNX Runtime's int8 path.</summary>
    public static bool MayUseInt8(string? precision) => precision is not null && Normalize(precision) is Int8 or Auto;

    public static string Normalize(string? precision) => (precision ?? Fp32).Trim().ToLowerInvariant();

    public static ScalarType ScalarType(string? precision) => Normalize(precision) switch
    {
        Fp16 => TorchSharp.torch.ScalarType.Float16,
        Bf16 => TorchSharp.torch.ScalarType.BFloat16,
        _ => TorchSharp.torch.ScalarType.Float32,
    };

    /// <summary>
    /// The precision asked for one version: <c>Serving:VersionPrecision:{name}/{version}</c>, else
    /// <c>Serving:VersionPrecision:{name}</c>, else <c>Serving:Precision</c>.
    /// </summary>
    public static string Requested(ServingOptions options, string name, int version)
    {
        var perVersion = options.VersionPrecision;
        return Normalize(perVersion.TryGetValue($"{name}/{version}", out var exact) ? exact
            : perVersion.TryGetValue(name, out var model) ? model
            : options.Precision);
    }

    /// <summary>
    /// The ONNX Runtime choice for a version asked to serve in <paramref name="requested"/>. <paramref name="int8"/> gives
    /// the version's servable int8 file (or null and why not; see <see cref="Int8Cache.ForServing"/>); it is consulted only
    /// when int8 may serve. Anything that rules int8 out leaves fp32 serving, and the reason says what it was.
    /// </summary>
    public static (PrecisionChoice Choice, string? Int8Path) ForOnnx(string requested, Int8Acceleration cpu, Func<(string? Path, string Reason)> int8)
    {
        requested = Normalize(requested);
        if (!MayUseInt8(requested))
        {
            return (new PrecisionChoice(Fp32, $"Serving:Precision is {requested}"), null);
        }

        if (requested == Auto && !cpu.Available)
        {
            return (new PrecisionChoice(Fp32, $"auto keeps fp32: {cpu.Describe()}"), null);
        }

        var (path, reason) = int8();
        if (path is null)
        {
            return (new PrecisionChoice(Fp32, $"{requested} asked, fp32 serves: {reason}"), null);
        }

        var note = cpu.Available ? $"{cpu.Instructions}; " : "int8 asked, though this CPU has no 8-bit dot-product instructions (it may not be faster); ";
        return (new PrecisionChoice(Int8, note + reason), path);
    }
}
