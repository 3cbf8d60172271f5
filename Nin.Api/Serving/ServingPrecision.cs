using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>The <c>Serving:Precision</c> values and the Torch number format each one means.</summary>
public static class ServingPrecision
{
    public const string Fp32 = "fp32";
    public const string Fp16 = "fp16";
    public const string Bf16 = "bf16";

    public static IReadOnlyList<string> Names { get; } = [Fp32, Fp16, Bf16];

    public static bool IsValid(string? precision) => precision is not null && Names.Contains(precision.Trim().ToLowerInvariant());

    public static bool IsFp32(string? precision) => precision is null || precision.Trim().Equals(Fp32, StringComparison.OrdinalIgnoreCase);

    public static ScalarType ScalarType(string? precision) => (precision ?? Fp32).Trim().ToLowerInvariant() switch
    {
        Fp16 => TorchSharp.torch.ScalarType.Float16,
        Bf16 => TorchSharp.torch.ScalarType.BFloat16,
        _ => TorchSharp.torch.ScalarType.Float32,
    };
}
