using Hangfire;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Runtime;

namespace Nin.Api.Health;

/// <summary>Torch's natives are loaded and a device is chosen.</summary>
internal sealed class TorchHealthCheck : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var info = TorchRuntime.Info;
            return Task.FromResult(HealthCheckResult.Healthy($"{info.Backend} on {info.Device}"));
        }
        catch (InvalidOperationException ex)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(ex.Message));
        }
    }
}

/// <summary>A model version is active and loads for serving.</summary>
internal sealed class ModelHealthCheck(ModelRegistry registry, ModelStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (store.Active is null)
        {
            return HealthCheckResult.Unhealthy("No model version is active: train one with POST /train or activate one with POST /models/{name}/versions/{version}/activate.");
        }

        try
        {
            var model = await registry.AcquireAsync(null, null, cancellationToken);
            if (model is null)
            {
                return HealthCheckResult.Unhealthy($"The active model {store.Active.Name} v{store.Active.Version} is not in the store.");
            }

            model.Release();
            return HealthCheckResult.Healthy($"{model.Name} v{model.Version}");
        }
        catch (CheckpointException ex)
        {
            return HealthCheckResult.Unhealthy($"The active model cannot be loaded: {ex.Message}");
        }
    }
}

/// <summary>Hangfire's job storage answers.</summary>
internal sealed class JobStorageHealthCheck(JobStorage storage) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            using var connection = storage.GetConnection();
            _ = connection.GetAllItemsFromSet("nin:health");
            return Task.FromResult(HealthCheckResult.Healthy(storage.GetType().Name));
        }
        catch (Exception ex)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"Job storage ({storage.GetType().Name}) is not reachable: {ex.GetBaseException().Message}"));
        }
    }
}
