using Hangfire;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Runtime;

namespace Nin.Api.Health;

/// <summary>
/// Torch's natives are loaded and a device is chosen. Degraded (still ready: serving does not depend on it) when the CPU's
/// float32 convolution gradients did not match float64 at start-up, so training on this CPU would go wrong.
/// </summary>
internal sealed class TorchHealthCheck : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var info = TorchRuntime.Info;
            return Task.FromResult(info.CpuGradients.Correct
                ? HealthCheckResult.Healthy($"{info.Backend} on {info.Device}")
                : HealthCheckResult.Degraded($"{info.Backend} on {info.Device}; {info.CpuGradients.Summary}"));
        }
        catch (InvalidOperationException ex)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(ex.Message));
        }
    }
}

/// <summary>
/// A model version is active and this replica serves it. Degraded (still ready: the old version serves) when the active
/// version failed to load here, with the cause and when it is tried again; unhealthy when nothing can be served.
/// </summary>
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
        }
        catch (ModelLoadException ex)
        {
            return HealthCheckResult.Unhealthy($"The active model cannot be loaded: {ex.Cause}");
        }

        var status = registry.Status;
        var served = status.Served is { } s ? $"{s.Name} v{s.Version}" : "nothing";
        if (status.Wanted is { } wanted && status.Served != wanted)
        {
            if (status.Failure is { } failure)
            {
                var next = Math.Max(0, (failure.RetryAt - DateTimeOffset.UtcNow).TotalSeconds);
                return HealthCheckResult.Degraded($"Serving {served}: the active version {wanted.Name} v{wanted.Version} cannot be loaded here ({failure.Cause}); attempt {failure.Attempts} failed, the next is in {next:F0} s.");
            }

            return HealthCheckResult.Healthy($"Serving {served} while the active version {wanted.Name} v{wanted.Version} loads.");
        }

        return HealthCheckResult.Healthy(served);
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
