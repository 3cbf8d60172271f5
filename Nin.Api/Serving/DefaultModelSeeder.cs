using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Serving;

/// <summary>
/// On start: puts the default model shipped with the service into an empty store and activates
/// it, so /predict works offline with nothing trained; then loads the active version.
/// </summary>
internal sealed partial class DefaultModelSeeder(
    ModelStore store, ModelRegistry registry, IOptions<NinOptions> options, ILogger<DefaultModelSeeder> logger) : IHostedService
{
    public static string ShippedDirectory => Path.Combine(AppContext.BaseDirectory, "DefaultModel");

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.SeedDefaultModel && store.List().Count == 0 && store.Active is null)
        {
            foreach (var dir in Directory.Exists(ShippedDirectory) ? Directory.EnumerateDirectories(ShippedDirectory) : [])
            {
                try
                {
                    // Its int8 file is made before it is activated, so its first load can serve it.
                    var info = store.Import(dir, activate: false);
                    RestoreInt8(info);
                    if (store.Active is null)
                    {
                        store.Activate(info.Name, info.Version);
                    }

                    LogSeeded(logger, info.Name, info.Version, info.Metadata.Metrics?.TestAccuracy ?? 0);
                }
                catch (CheckpointException ex)
                {
                    LogSeedFailed(logger, dir, ex.Message);
                }
            }
        }

        try
        {
            await registry.WarmUpAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is CheckpointException or ModelLoadException)
        {
            LogSeedFailed(logger, store.Root, ex.Message); // readiness says why; the load is retried with back-off
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // The shipped model travels with its int8 record (calibrated ranges and measured accuracy), not the int8 file: the
    // file is made here, once, from its weights and those ranges (docs/int8.md).
    private void RestoreInt8(ModelVersionInfo info)
    {
        try
        {
            if (!Nin.Model.Onnx.Int8Cache.Restore(info.Directory) && System.IO.File.Exists(Path.Combine(info.Directory, Nin.Model.Onnx.Int8Cache.RecordFile)))
            {
                LogInt8NotRestored(logger, info.Name, info.Version, "its int8 graph differs from the one measured; quantize it again");
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogInt8NotRestored(logger, info.Name, info.Version, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The shipped model {Model} v{Version} serves fp32 only: {Reason}")]
    private static partial void LogInt8NotRestored(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Seeded the model store with the shipped model {Model} v{Version} (test accuracy {Accuracy:F4})")]
    private static partial void LogSeeded(ILogger logger, string model, int version, double accuracy);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model at {Path} not usable: {Reason}")]
    private static partial void LogSeedFailed(ILogger logger, string path, string reason);
}
