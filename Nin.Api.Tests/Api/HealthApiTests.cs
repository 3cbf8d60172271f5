using System.Net;
using System.Net.Http.Json;
using Nin.Api.Health;

namespace Nin.Api.Tests.Api;

[UnitTests]
public sealed class HealthApiTests
{
    [Fact]
    public async Task Live_answers_200_with_the_device()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();

        using var response = await client.GetAsync(new Uri("/health/live", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<LiveResponse>();
        Assert.NotNull(body);
        Assert.Equal("live", body.Status);
        Assert.Equal("cpu", body.Device);
        Assert.Equal("cpu", body.Backend);
        Assert.StartsWith("0.107", body.TorchSharpVersion, StringComparison.Ordinal);
        Assert.True(body.Threads >= 1);

        // Which CPU convolution kernels Torch uses, and that their float32 gradients matched float64 at start-up.
        Assert.Equal(Nin.Model.Runtime.TorchRuntime.Info.CpuGradients.Summary, body.CpuGradients);
        Assert.Contains("gradients match float64", body.CpuGradients, StringComparison.Ordinal);
    }
}
