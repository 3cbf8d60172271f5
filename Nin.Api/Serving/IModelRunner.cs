namespace Nin.Api.Serving;

/// <summary>
/// The seam between the batcher and an inference engine: one served version's network, run by TorchSharp or
/// ONNX Runtime. <see cref="Run"/> is called by the batcher's worker threads, possibly several at once.
/// </summary>
public interface IModelRunner : IDisposable
{
    /// <summary><c>torch</c> or <c>onnxruntime</c>, as responses name it.</summary>
    string Engine { get; }

    /// <summary>The device name, as responses report it.</summary>
    string Device { get; }

    /// <summary>
    /// Softmax probabilities for the inputs, row after row ([N, classes]). All inputs are of one kind (bytes or
    /// floats). <paramref name="threads"/> is how many CPU threads this pass may use.
    /// </summary>
    float[] Run(IReadOnlyList<InferenceInput> inputs, int threads);

    /// <summary>
    /// Whether a pass may run on any thread, such as the request's own, at no cost in threads: true where the engine
    /// keeps its own thread pool (ONNX Runtime), false where each calling thread gets its own (libtorch's OpenMP teams).
    /// </summary>
    bool RunsOnAnyThread => false;
}
