using Microsoft.ML.OnnxRuntime;

namespace Nin.Model.Onnx;

/// <summary>ONNX Runtime session options for work on the CPU beside the service (calibration, the int8 evaluation).</summary>
public static class OnnxSessions
{
    /// <summary>
    /// <paramref name="threads"/> intra-op threads that sleep between operators instead of spinning (the cores are
    /// shared with serving), sequential execution, and the given graph optimization level.
    /// </summary>
    public static SessionOptions CpuOptions(int threads, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        var options = new SessionOptions
        {
            IntraOpNumThreads = Math.Max(1, threads),
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = optimization,
        };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return options;
    }
}
