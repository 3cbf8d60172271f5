using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Nin.Api.Serving;
using Nin.Model.Runtime;

namespace Nin.Api.Health;

/// <summary>Liveness: the process is up and Torch is loaded on a device; <c>Engine</c> is the serving engine (<c>torch</c> or <c>onnxruntime</c>).</summary>
public sealed record LiveResponse(string Status, string Device, string Backend, string TorchSharpVersion, bool CudaAvailable, int Threads, string Engine, string Role);

/// <summary>One readiness check.</summary>
public sealed record CheckResult(string Status, string? Description);

/// <summary>Readiness: which checks pass and why the others fail.</summary>
public sealed record ReadyResponse(string Status, IReadOnlyDictionary<string, CheckResult> Checks);

public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        var health = app.MapGroup("/health").WithTags("Health");
        health.MapGet("/live", GetLive)
            .WithName("GetLive")
            .WithSummary("Liveness probe")
            .WithDescription("200 while the process runs; reports the Torch device and backend the service uses, the serving engine (`torch` or `onnxruntime`) and the process's role (`all`, `api` or `worker`: Nin:Role).");
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { ResponseWriter = WriteReadyAsync })
            .WithMetadata(new HttpMethodMetadata([HttpMethods.Get])) // health checks answer any method otherwise; others get 405
            .WithTags("Health")
            .WithName("GetReady")
            .WithSummary("Readiness probe")
            .WithDescription("200 when Torch is loaded, a model is served (not checked on a `worker`) and the job storage answers; 503 otherwise, with each check's status and reason.")
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(ReadyResponse), ["application/json"]))
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status503ServiceUnavailable, typeof(ReadyResponse), ["application/json"]));
        return app;
    }

    private static Task WriteReadyAsync(HttpContext context, HealthReport report)
    {
        var body = new ReadyResponse(
            report.Status switch { HealthStatus.Healthy => "ready", HealthStatus.Degraded => "ready, degraded", _ => "not ready" },
            report.Entries.ToDictionary(e => e.Key, e => new CheckResult(e.Value.Status.ToString(), Scrub(context, e.Value.Description))));
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, JsonSerializerOptions.Web));
    }

    /// <summary>Readiness is open: its reasons name the service's folders by role and no other path.</summary>
    private static string? Scrub(HttpContext context, string? description) =>
        description is null ? null : Infrastructure.ClientErrors.Scrub(description, context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Infrastructure.NinOptions>>().Value);

    public static Ok<LiveResponse> GetLive(IOptions<ServingOptions> serving, Infrastructure.NinRole role)
    {
        var info = TorchRuntime.Info;
        return TypedResults.Ok(new LiveResponse("live", info.Device, info.Backend, info.TorchSharpVersion, info.CudaAvailable, info.Threads, ServingEngines.Current(serving.Value), role.Name));
    }
}
