using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Health;

/// <summary>
/// At start, before jobs run or the model is seeded: sweeps what interrupted writes left in the model store and the job
/// folders (temporary files, staging folders, half-finished swaps; with other processes sharing the folders only those
/// older than an hour, so none of theirs in flight), and says in the log which records could not be read (damaged job
/// records and model versions, a damaged active-version pointer and what became of it). Nothing but temporaries is deleted.
/// </summary>
internal sealed partial class StorageStartup(
    ModelStore models, ITrainingJobStore jobs, IOptions<NinOptions> folders, IOptions<HangfireOptions> hangfire, ILogger<StorageStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var age = hangfire.Value.UsesPostgres ? TimeSpan.FromHours(1) : TimeSpan.Zero;
        var swept = models.SweepTemporary(age).Concat(TemporaryFiles.Sweep(JobFolders.Root(folders.Value), age)).ToList();
        if (swept.Count > 0)
        {
            LogSwept(logger, swept.Count, string.Join(", ", swept.Take(10).Select(p => ClientErrors.Scrub(p, folders.Value))));
        }

        foreach (var damaged in models.Damaged())
        {
            LogDamagedVersion(logger, damaged.Name, damaged.Version, damaged.Reason);
        }

        if (models.ActivePointerReport is { } report)
        {
            if (models.ActivePointerDamaged)
            {
                LogPointerDamaged(logger, report);
            }
            else
            {
                LogPointerRecovered(logger, report);
            }
        }

        _ = jobs.Damaged(); // the file store logged its damaged records as it read them
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Storage: removed {Count} temporary files or folders left by interrupted writes: {Paths}")]
    private static partial void LogSwept(ILogger logger, int count, string paths);

    [LoggerMessage(Level = LogLevel.Error, Message = "Storage: model {Model} version {Version} is damaged and is listed as such (GET /models); it is kept, not deleted: {Reason}")]
    private static partial void LogDamagedVersion(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Storage: {Report}")]
    private static partial void LogPointerDamaged(ILogger logger, string report);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storage: {Report}")]
    private static partial void LogPointerRecovered(ILogger logger, string report);
}
