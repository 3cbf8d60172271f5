using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Health;

/// <summary>
/// Free space on each data folder: degraded (still ready: serving needs no writes) when one has less than
/// <see cref="StorageOptions.MinimumFreeBytes"/>; training, uploads and activations there may then answer 507.
/// </summary>
internal sealed class DiskSpaceHealthCheck(IOptions<NinOptions> folders, IOptions<StorageOptions> storage) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var floor = storage.Value.MinimumFreeBytes;
        var parts = new List<string>();
        var low = new List<string>();
        var data = new Dictionary<string, object>();
        foreach (var (name, path) in DataFolders.Of(folders.Value))
        {
            try
            {
                var free = DiskSpace.Free(path);
                data[name] = free;
                parts.Add($"{name} {InsufficientStorageException.Format(free)} free");
                if (free < floor)
                {
                    low.Add(name);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
            {
                parts.Add($"{name}: free space unknown ({ex.GetType().Name})");
            }
        }

        var summary = string.Join(", ", parts);
        return Task.FromResult(low.Count == 0
            ? HealthCheckResult.Healthy(summary, data)
            : HealthCheckResult.Degraded(
                $"Low disk space on {string.Join(", ", low)} (below Storage:MinimumFreeBytes, {InsufficientStorageException.Format(floor)}): {summary}. Writes that do not fit answer 507.", data: data));
    }
}

/// <summary>
/// Records the service could not read: damaged job records, damaged model versions, a damaged active-version pointer
/// (recovered or not). Degraded while any exist: they are kept for an operator to look at, never deleted automatically.
/// </summary>
internal sealed class StoredRecordsHealthCheck(ITrainingJobStore jobs, ModelStore models) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var problems = new List<string>();
        var damagedJobs = jobs.Damaged();
        if (damagedJobs.Count > 0)
        {
            problems.Add($"{damagedJobs.Count} damaged job record(s) ({string.Join(", ", damagedJobs.Take(5).Select(d => d.JobId))}; GET /train/damaged)");
        }

        var damagedVersions = models.Damaged();
        if (damagedVersions.Count > 0)
        {
            problems.Add($"{damagedVersions.Count} damaged model version(s) ({string.Join(", ", damagedVersions.Take(5).Select(d => $"{d.Name} v{d.Version}"))}; GET /models lists them)");
        }

        if (models.ActivePointerReport is { } report)
        {
            problems.Add(report);
        }

        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy("All job records and model versions read")
            : HealthCheckResult.Degraded(string.Join(" ", problems)));
    }
}
