using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Model.Runtime;

namespace Nin.Api.Health;

/// <summary>Liveness: the process is up and Torch is loaded on a device.</summary>
public sealed record LiveResponse(string Status, string Device, string Backend, string TorchSharpVersion, bool CudaAvailable, int Threads);

public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        var health = app.MapGroup("/health").WithTags("Health");
        health.MapGet("/live", GetLive)
            .WithName("GetLive")
            .WithSummary("Liveness probe")
            .WithDescription("200 while the process runs; reports the Torch device and backend the service uses.");
        return app;
    }

    public static Ok<LiveResponse> GetLive()
    {
        var info = TorchRuntime.Info;
        return TypedResults.Ok(new LiveResponse("live", info.Device, info.Backend, info.TorchSharpVersion, info.CudaAvailable, info.Threads));
    }
}
