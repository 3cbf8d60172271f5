using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Model.Runtime;

/// <summary>
/// What the start-up check of float32 convolution gradients on the CPU found: whether oneDNN (libtorch's
/// <c>mkldnn</c> kernels) is in use, the worst relative error against float64, and whether training here can trust them.
/// </summary>
public sealed record CpuGradientReport(bool? OneDnn, double Error, bool Correct, string Summary);

/// <summary>
/// Checks, once per process, that libtorch's float32 convolutions give the gradients float64 gives, and turns
/// oneDNN off when its kernels do not. Seen on a virtual machine that reports an AMD EPYC (Zen 5) but none of
/// the CPU's cache sizes (CPUID 0x8000001D and 4 read all zeros): oneDNN's backward-data convolution, for any
/// batch above one and fewer than about 20 output channels, returned values 12–100 % off or NaN, changing from
/// call to call, in TorchSharp's libtorch 2.10 and in PyTorch 2.6 alike. Every training step then got wrong
/// gradients for the layers below the NiN's last block (runs stuck or diverged) and Grad-CAM's maps drifted.
/// libtorch's own kernels were right there, at about 0.6× the training speed; elsewhere oneDNN stays on.
/// </summary>
public static class CpuGradientCheck
{
    /// <summary>Worst relative error (max |float32 − float64| over max |float64|) that still counts as right; a correct host gives ~1e-7.</summary>
    public const double Tolerance = 1e-3;

    /// <summary>Float32 passes compared with float64 at most (the first wrong one ends the check).</summary>
    public const int Passes = 24;

    /// <summary><c>auto</c>: check, and turn oneDNN off when its gradients are wrong; <c>on</c>: keep it (check only); <c>off</c>: libtorch's own kernels.</summary>
    public static readonly string[] Modes = ["auto", "on", "off"];

    /// <summary>Applies <paramref name="mode"/> (see <see cref="Modes"/>) and reports what the check found. Call with the natives loaded.</summary>
    public static CpuGradientReport Run(string? mode)
    {
        var wanted = string.IsNullOrWhiteSpace(mode) ? "auto" : mode.Trim().ToLowerInvariant();
        if (wanted == "off")
        {
            OneDnn.TrySet(false);
        }

        var error = MeasureError();
        var oneDnn = OneDnn.Get();
        if (error <= Tolerance)
        {
            return new(oneDnn, error, true, oneDnn == false
                ? $"libtorch's own CPU kernels (oneDNN off by Torch:OneDnn); float32 gradients match float64 ({Format(error)})"
                : $"oneDNN; float32 gradients match float64 ({Format(error)})");
        }

        if (wanted == "auto" && oneDnn == true && OneDnn.TrySet(false))
        {
            var without = MeasureError();
            return without <= Tolerance
                ? new(false, without, true, $"libtorch's own CPU kernels; float32 gradients match float64 ({Format(without)}). oneDNN's did not on this CPU (error {Format(error)}), so it is off (training on the CPU is slower)")
                : new(false, without, false, $"float32 convolution gradients are wrong on this CPU with oneDNN (error {Format(error)}) and without it ({Format(without)}): training here would not learn what it should; use another host or a GPU");
        }

        return new(oneDnn, error, false, oneDnn == true
            ? $"oneDNN's float32 convolution gradients are wrong on this CPU (error {Format(error)} against float64) and Torch:OneDnn=on keeps it: training here would not learn what it should; set Torch:OneDnn=auto"
            : $"float32 convolution gradients are wrong on this CPU (error {Format(error)} against float64): training here would not learn what it should; use another host or a GPU");
    }

    /// <summary>
    /// The worst relative error of a small convolution stack's gradients (input and every weight) in float32 against
    /// float64, over up to <see cref="Passes"/> passes; infinity for NaN. The fault seen came and went from call to call
    /// (between 6 and 20 calls in 20 were wrong, some processes' first ones right), so one pass proves little.
    /// </summary>
    public static double MeasureError()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(20_261_203);
        var x = randn([8, 3, 9, 9], generator: generator);
        var w1 = randn([16, 3, 3, 3], generator: generator) * 0.3;
        var w2 = randn([10, 16, 3, 3], generator: generator) * 0.15;
        var w3 = randn([10, 10, 1, 1], generator: generator) * 0.3;
        var upstream = randn([8, 10], generator: generator);
        Tensor[] inputs = [x, w1, w2, w3];
        // float64 runs on libtorch's own kernels whatever is on; NNPACK (float32 only) is kept from asking itself first,
        // which on CPUs without it logs a warning per call.
        var nnpack = OneDnn.NnpackEnabled();
        AtenContext.TrySet(OneDnn.NnpackSetter, false);
        var exact = Gradients(inputs, upstream, ScalarType.Float64);
        if (nnpack == true)
        {
            AtenContext.TrySet(OneDnn.NnpackSetter, true);
        }

        var worst = 0.0;
        for (var pass = 0; pass < Passes && worst <= Tolerance; pass++)
        {
            var single = Gradients(inputs, upstream, ScalarType.Float32);
            for (var i = 0; i < exact.Length; i++)
            {
                var error = ((single[i] - exact[i]).abs().max() / exact[i].abs().max()).item<double>();
                worst = double.IsNaN(error) ? double.PositiveInfinity : Math.Max(worst, error);
            }
        }

        return worst;
    }

    private static Tensor[] Gradients(Tensor[] inputs, Tensor upstream, ScalarType type)
    {
        var p = inputs.Select(t => t.to_type(type).detach().requires_grad_()).ToArray();
        var h = nn.functional.relu(nn.functional.conv2d(p[0], p[1], padding: [1, 1]));
        h = nn.functional.relu(nn.functional.conv2d(h, p[2], padding: [1, 1]));
        h = nn.functional.conv2d(h, p[3]).mean([2, 3]);
        (h * upstream.to_type(type)).sum().backward();
        return [.. p.Select(t => t.grad!.to_type(ScalarType.Float64))];
    }

    private static string Format(double error) => double.IsInfinity(error) ? "NaN" : error.ToString("0.#e0", CultureInfo.InvariantCulture);
}
