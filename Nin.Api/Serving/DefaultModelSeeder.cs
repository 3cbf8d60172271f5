using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Serving;

/// <summary>
/// On start: puts the default model shipped with the service into an empty store, through the same steps as any new
/// version (<see cref="Models.ModelVersionPublisher"/>: its ONNX file, its evaluation shipped beside it, activated as
/// nothing is served), so /predict and the dashboard's Evaluation work offline with nothing trained; then loads the
/// active version.
/// </summary>
internal sealed partial class DefaultModelSeeder(
    ModelStore store, Models.ModelVersionPublisher publisher, ModelRegistry registry, IOptions<NinOptions> options, ILogger<DefaultModelSeeder> logger) : IHostedService
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
                    var info = publisher.Seed(dir);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Seeded the model store with the shipped model {Model} v{Version} (test accuracy {Accuracy:F4})")]
    private static partial void LogSeeded(ILogger logger, string model, int version, double accuracy);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model at {Path} not usable: {Reason}")]
    private static partial void LogSeedFailed(ILogger logger, string path, string reason);
}
