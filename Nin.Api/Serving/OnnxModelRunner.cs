using System.Buffers;
using Microsoft.ML.OnnxRuntime;
using ModelMetadata = Nin.Model.Checkpoints.ModelMetadata;
using SessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using Nin.Model.Onnx;
using Nin.Model.Training;

namespace Nin.Api.Serving;

/// <summary>
/// Serves a version with ONNX Runtime from its exported ONNX file. A session is created per thread count the
/// batcher asks for (all cores for a lone pass, one each while several run), so the workers-vs-threads logic
/// holds as with Torch; sessions are safe for concurrent runs. Byte inputs are preprocessed in managed code with
/// the same arithmetic as Torch's bilinear resize.
/// </summary>
public sealed class OnnxModelRunner : IModelRunner
{
    public const string EngineName = "onnxruntime";

    private readonly byte[] model;
    private readonly ModelMetadata metadata;
    private readonly bool cuda;
    private readonly bool spinning;
    private readonly Lock gate = new();
    private readonly Dictionary<int, InferenceSession> sessions = [];
    private readonly string[] inputNames = [OnnxExporter.InputName];
    private readonly string[] outputNames = [OnnxExporter.OutputName];
    private bool disposed;

    /// <summary>
    /// Sessions for the thread counts the batcher will ask for (<paramref name="threadCounts"/>) are made now, so a load
    /// fails at once and no request waits for one; another count gets its session on first use.
    /// </summary>
    public OnnxModelRunner(string onnxPath, ModelMetadata metadata, IEnumerable<int> threadCounts, bool cuda, bool spinning)
    {
        this.spinning = spinning;
        model = File.ReadAllBytes(onnxPath);
        this.metadata = metadata;
        this.cuda = cuda;
        Device = cuda ? "cuda" : "cpu";
        try
        {
            foreach (var threads in threadCounts.Distinct())
            {
                _ = Session(threads);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Engine => EngineName;

    public string Device { get; }

    /// <summary>ONNX Runtime runs a pass on its own intra-op threads; the caller's thread only joins them.</summary>
    public bool RunsOnAnyThread => true;

    public float[] Run(IReadOnlyList<InferenceInput> inputs, int threads)
    {
        var c = metadata.InputChannels;
        var s = metadata.ImageSize;
        var per = c * s * s;
        var length = inputs.Count * per;

        // The network's input comes from a pool: at 224 px one image is 200 KB, which a fresh array would put on the
        // large-object heap for every request (a full collection every few dozen requests, measured).
        var rented = ArrayPool<float>.Shared.Rent(length);
        try
        {
            var flat = rented.AsSpan(0, length);
            if (inputs[0].Floats is not null)
            {
                for (var i = 0; i < inputs.Count; i++)
                {
                    inputs[i].Floats!.Value.Span.CopyTo(flat.Slice(i * per, per));
                }
            }
            else
            {
                int h = metadata.Preprocessing.NativeHeight, w = metadata.Preprocessing.NativeWidth;
                for (var i = 0; i < inputs.Count; i++)
                {
                    ManagedPreprocess.ToNetworkInput(inputs[i].Bytes, c, h, w, s, flat.Slice(i * per, per));
                }
            }

            using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, rented.AsMemory(0, length), [inputs.Count, c, s, s]);
            using var options = new RunOptions();
            using var outputs = Session(threads).Run(options, inputNames, [value], outputNames);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    private InferenceSession Session(int threads)
    {
        threads = Math.Max(1, threads);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!sessions.TryGetValue(threads, out var session))
            {
                using var options = new SessionOptions
                {
                    IntraOpNumThreads = threads,
                    InterOpNumThreads = 1,
                    ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                    GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                };
                options.AddSessionConfigEntry("session.intra_op.allow_spinning", spinning ? "1" : "0");
                options.AddSessionConfigEntry("session.force_spinning_stop", "1"); // spin within a pass only, never between requests
                if (cuda)
                {
                    options.AppendExecutionProvider_CUDA();
                }

                session = new InferenceSession(model, options);
                sessions[threads] = session;
            }

            return session;
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            foreach (var session in sessions.Values)
            {
                session.Dispose();
            }

            sessions.Clear();
        }
    }
}
