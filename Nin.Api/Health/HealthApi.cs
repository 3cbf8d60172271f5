using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Nin.Api.Serving;
using Nin.Model.Onnx;
using Nin.Model.Runtime;

namespace Nin.Api.Health;

/// <summary>
/// Liveness: the process is up and Torch is loaded on a device; <c>Engine</c> is the serving engine (<c>torch</c> or
/// <c>onnxruntime</c>); <c>Precision</c> the number format the active version serves in (<c>fp32</c>, <c>fp16</c>,
/// <c>bf16</c>, <c>int8</c>; null while none is loaded, and on a worker) and <c>PrecisionReason</c> why;
/// <c>Int8Acceleration</c> the CPU's 8-bit dot-product instructions (null: none, so <c>auto</c> keeps fp32);
/// <c>CpuGradients</c> which CPU convolution kernels Torch uses and whether their float32 gradients matched float64 at
/// start-up (<c>Torch:OneDnn</c>).
/// </summary>
public sealed record LiveResponse(
    string Status, string Device, string Backend, string TorchSharpVersion, bool CudaAvailable, int Threads, string Engine, string Role,
    string? Precision = null, string? PrecisionReason = null, string? Int8Acceleration = null, string? CpuGradients = null);

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
            .WithDescription("200 while the process runs; reports the Torch device and backend the service uses, the serving engine (`torch` or `onnxruntime`), the process's role (`all`, `api` or `worker`: Nin:Role), the precision the active version serves in (`fp32`, `fp16`, `bf16` or `int8`; null while none is loaded) with the reason (Serving:Precision, the CPU's int8 support, the version's measured int8 accuracy), and the CPU's 8-bit dot-product instructions (`int8Acceleration`: AVX-512 VNNI, AVX-VNNI, ARM dot product, or null).");
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

    public static Ok<LiveResponse> GetLive(IOptions<ServingOptions> serving, Infrastructure.NinRole role, IServiceProvider services)
    {
        var info = TorchRuntime.Info;
        var precision = role.ServesApi ? services.GetRequiredService<ModelRegistry>().ActivePrecision : null; // a worker serves nothing
        return TypedResults.Ok(new LiveResponse("live", info.Device, info.Backend, info.TorchSharpVersion, info.CudaAvailable, info.Threads, ServingEngines.Current(serving.Value), role.Name,
            precision?.Precision, precision?.Reason, Int8Acceleration.Current.Instructions, info.CpuGradients.Summary));
    }
}
