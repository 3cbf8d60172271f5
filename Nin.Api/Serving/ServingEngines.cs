using Microsoft.ML.OnnxRuntime;
using Nin.Model.Runtime;

namespace Nin.Api.Serving;

/// <summary>Which inference engine serves (the <c>Serving:Engine</c> setting) and how <c>auto</c> decides.</summary>
public static class ServingEngines
{
    public const string Auto = "auto";

    public static IReadOnlyList<string> Names { get; } = [Auto, TorchModelRunner.EngineName, OnnxModelRunner.EngineName];

    public static bool IsValid(string? engine) => engine is not null && Names.Contains(engine.Trim().ToLowerInvariant());

    /// <summary>
    /// The engine for a Torch device: <c>auto</c> is ONNX Runtime on a CPU (faster there than libtorch for this
    /// network), and on CUDA TorchSharp unless ONNX Runtime's CUDA execution provider is present; half precision is
    /// TorchSharp's, int8 ONNX Runtime's.
    /// </summary>
    public static string Resolve(string? configured, string torchDevice, string? precision = null)
    {
        var engine = (configured ?? Auto).Trim().ToLowerInvariant();
        if (engine != Auto)
        {
            return engine;
        }

        if (ServingPrecision.IsHalf(precision))
        {
            return TorchModelRunner.EngineName; // ONNX Runtime serves fp32 and int8
        }

        if (ServingPrecision.Normalize(precision) == ServingPrecision.Int8)
        {
            return OnnxModelRunner.EngineName;
        }

        return torchDevice.StartsWith("cpu", StringComparison.OrdinalIgnoreCase) || OnnxCudaAvailable.Value
            ? OnnxModelRunner.EngineName
            : TorchModelRunner.EngineName;
    }

    /// <summary>Whether ONNX Runtime should run on CUDA: the device is CUDA and the provider is there.</summary>
    public static bool OnnxOnCuda(string torchDevice) =>
        !torchDevice.StartsWith("cpu", StringComparison.OrdinalIgnoreCase) && OnnxCudaAvailable.Value;

    private static readonly Lazy<bool> OnnxCudaAvailable = new(() =>
    {
        try
        {
            return OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or TypeInitializationException)
        {
            return false;
        }
    });

    /// <summary>The engine the service serves with, for <c>/health/live</c>.</summary>
    public static string Current(ServingOptions options) => Resolve(options.Engine, TorchRuntime.Info.Device, options.Precision);
}
