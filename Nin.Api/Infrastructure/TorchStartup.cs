using Microsoft.Extensions.Options;
using Nin.Model.Runtime;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Loads libtorch before anything else starts, so a host that cannot run Torch stops at once with
/// the real cause instead of failing on the first request.
/// </summary>
internal sealed partial class TorchStartup(IOptions<TorchOptions> options, ILogger<TorchStartup> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        try
        {
            var info = TorchRuntime.Initialize(options.Value);
            TorchRuntime.ConfineOtherThreads();
            LogReady(logger, info.Device, info.Backend, info.TorchSharpVersion, info.Threads, info.CudaDevices);
            if (!info.CpuGradients.Correct)
            {
                LogWrongGradients(logger, info.CpuGradients.Summary);
            }
            else if (info.CpuGradients.OneDnn == false && !string.Equals(options.Value.OneDnn?.Trim(), "off", StringComparison.OrdinalIgnoreCase))
            {
                LogCpuKernels(logger, info.CpuGradients.Summary);
            }
        }
        catch (TorchLoadException ex)
        {
            LogFailed(logger, ex.Message);
            throw;
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Torch ready: device {Device}, backend {Backend}, TorchSharp {Version}, {Threads} CPU threads, {CudaDevices} CUDA device(s)")]
    private static partial void LogReady(ILogger logger, string device, string backend, string version, int threads, int cudaDevices);

    [LoggerMessage(Level = LogLevel.Warning, Message = "CPU convolutions: {Summary}")]
    private static partial void LogCpuKernels(ILogger logger, string summary);

    [LoggerMessage(Level = LogLevel.Error, Message = "CPU convolutions: {Summary}")]
    private static partial void LogWrongGradients(ILogger logger, string summary);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Message}")]
    private static partial void LogFailed(ILogger logger, string message);
}
