namespace Nin.Model.Runtime;

/// <summary>
/// cuDNN's benchmark mode — PyTorch's <c>torch.backends.cudnn.benchmark</c>: for a fixed input size, cuDNN
/// times its convolution algorithms on the first batches and keeps the fastest. TorchSharp 0.107 has no
/// setter for it (only <c>allow_tf32</c>), so this goes through libtorch's own <c>at::Context</c>
/// (<see cref="AtenContext"/>). On a CPU the flag is stored and has no effect.
/// </summary>
public static class CudnnBenchmark
{
    /// <summary>Turns the mode on or off; false when libtorch's exports cannot be found (nothing changes then).</summary>
    public static bool TrySet(bool enabled) => AtenContext.TrySet("_ZN2at7Context17setBenchmarkCuDNNEb", enabled); // at::Context::setBenchmarkCuDNN(bool)

    /// <summary>The current mode, or null when libtorch's exports cannot be found.</summary>
    public static bool? Get() => AtenContext.Get("_ZNK2at7Context14benchmarkCuDNNEv"); // at::Context::benchmarkCuDNN() const
}
