namespace Nin.Model.Runtime;

/// <summary>
/// libtorch's switch for oneDNN (<c>mkldnn</c>) CPU kernels, PyTorch's <c>torch.backends.mkldnn.enabled</c>; TorchSharp
/// 0.107 has no setter, so this goes through <see cref="AtenContext"/>. Off, convolutions use libtorch's own kernels
/// (im2col and GEMM), the ones <see cref="CpuGradientCheck"/> then verifies.
/// </summary>
public static class OneDnn
{
    /// <summary>at::Context::setUserEnabledNNPACK(bool).</summary>
    internal const string NnpackSetter = "_ZN2at7Context20setUserEnabledNNPACKEb";

    /// <summary>
    /// Turns oneDNN on or off, and NNPACK with it: with oneDNN off libtorch would try NNPACK next, a backend the check
    /// did not choose, and where the CPU lacks it libtorch logs a warning on every convolution. False when libtorch's
    /// exports cannot be found (nothing changes then).
    /// </summary>
    public static bool TrySet(bool enabled)
    {
        if (!AtenContext.TrySet("_ZN2at7Context20setUserEnabledMkldnnEb", enabled)) // at::Context::setUserEnabledMkldnn(bool)
        {
            return false;
        }

        AtenContext.TrySet(NnpackSetter, enabled);
        return true;
    }

    /// <summary>Whether oneDNN is on, or null when libtorch's exports cannot be found.</summary>
    public static bool? Get() => AtenContext.Get("_ZNK2at7Context17userEnabledMkldnnEv"); // at::Context::userEnabledMkldnn() const

    /// <summary>Whether NNPACK may be tried, or null when libtorch's exports cannot be found.</summary>
    public static bool? NnpackEnabled() => AtenContext.Get("_ZNK2at7Context17userEnabledNNPACKEv"); // at::Context::userEnabledNNPACK() const
}
