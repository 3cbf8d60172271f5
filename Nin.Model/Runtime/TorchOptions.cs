namespace Nin.Model.Runtime;

/// <summary>How the Torch runtime is set up. Bound from the <c>Torch</c> configuration section.</summary>
public sealed class TorchOptions
{
    public const string SectionName = "Torch";

    /// <summary><c>auto</c> (CUDA when available, else CPU), <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; set; } = "auto";

    /// <summary>Intra-op CPU threads for libtorch; 0 keeps libtorch's default (one per core).</summary>
    public int Threads { get; set; }

    /// <summary>
    /// A folder holding libtorch's shared libraries (e.g. a PyTorch install's <c>torch/lib</c>), for the
    /// <c>system</c> backend. Defaults to the <c>NIN_LIBTORCH_DIR</c> environment variable.
    /// </summary>
    public string? LibTorchDirectory { get; set; }

    /// <summary>
    /// oneDNN (<c>mkldnn</c>) CPU kernels: <c>auto</c> checks at start-up that float32 convolution gradients match
    /// float64 and turns oneDNN off when they do not (<see cref="CpuGradientCheck"/>); <c>on</c> keeps it; <c>off</c>
    /// uses libtorch's own kernels.
    /// </summary>
    public string OneDnn { get; set; } = "auto";
}
