using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Nin.Api.Tests.Api;

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class OperationsTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    [Fact]
    public async Task Ready_is_200_with_every_check_passing_when_a_model_is_served()
    {
        using var client = fixture.Factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("ready", body.GetProperty("status").GetString());
        foreach (var check in new[] { "torch", "model", "jobStorage" })
        {
            Assert.Equal("Healthy", body.GetProperty("checks").GetProperty(check).GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task Metrics_expose_serving_series_after_predictions()
    {
        using var client = fixture.Factory.CreateClient();
        for (var i = 0; i < 3; i++)
        {
            using var form = PredictApiTests.Form(PredictApiTests.Png(i));
            using var r = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        var text = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("nin_inference_batch_size", text, StringComparison.Ordinal);
        Assert.Contains("nin_inference_images", text, StringComparison.Ordinal);
        Assert.Contains("nin_model_active{", text, StringComparison.Ordinal);
        Assert.Contains("model=\"alpha\"", text, StringComparison.Ordinal);
        Assert.Contains("nin_training_jobs{", text, StringComparison.Ordinal);
        Assert.Contains("nin_torch_device{", text, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration_seconds", text, StringComparison.Ordinal);
        Assert.Contains("nin_process_memory_working_set", text, StringComparison.Ordinal);
    }
}

[UnitTests]
public sealed class ReadinessWithoutModelTests
{
    [Fact]
    public async Task Ready_is_503_naming_the_missing_model()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var model = body.GetProperty("checks").GetProperty("model");
        Assert.Equal("Unhealthy", model.GetProperty("status").GetString());
        Assert.Contains("No model version is active", model.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("torch").GetProperty("status").GetString());
    }
}
