using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Training;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Training requests are checked against the memory the workers have free now (409 naming both fields when none has
/// enough), and the test pass needs no more than a step.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class TrainingMemoryTests : IDisposable
{
    private const long OneGiB = 1L << 30;
    private readonly NinApiFactory factory = new(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });

    public void Dispose() => factory.Dispose();

    private sealed class FixedProbe(long bytes) : TrainingMemoryProbe
    {
        public override long? AvailableBytes(string device) => bytes;
    }

    private static async Task<JsonElement> ErrorsOf(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.Conflict)
    {
        await SecurityApiTests.AssertProblem(response, status);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
    }

    [Theory]
    [InlineData(16, 512)]
    [InlineData(4, 1024)]
    [InlineData(1024, 96)]
    public async Task A_batch_that_cannot_fit_in_the_free_memory_of_any_worker_is_a_409_naming_both_fields(int batchSize, int imageSize)
    {
        using var oneGiBFree = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TrainingMemoryProbe>(new FixedProbe(OneGiB))));
        using var client = oneGiBFree.CreateClient();
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { batchSize, imageSize, epochs = 1 });
        var errors = await ErrorsOf(response);
        var message = errors.GetProperty("batchSize")[0].GetString()!;
        Assert.Equal(message, errors.GetProperty("imageSize")[0].GetString());
        Assert.Contains($"batchSize {batchSize} at imageSize {imageSize}", message, StringComparison.Ordinal);
        Assert.DoesNotContain("1,024 MiB", message, StringComparison.Ordinal); // what the host has is not the client's business
        Assert.DoesNotContain("1024 MiB", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_batch_that_fits_passes_the_memory_check()
    {
        using var oneGiBFree = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TrainingMemoryProbe>(new FixedProbe(OneGiB))));
        using var client = oneGiBFree.CreateClient();
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { batchSize = 2, imageSize = 512, epochs = 0 });
        var errors = await ErrorsOf(response, HttpStatusCode.BadRequest);
        Assert.Equal(["epochs"], errors.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task On_this_machine_batch_64_at_1024_px_is_refused_without_the_host_s_memory_in_the_answer()
    {
        // About 30 GB of activations and gradients: more than this machine (24 GB) has.
        using var client = factory.CreateClient();
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { batchSize = 64, imageSize = 1024, epochs = 1 });
        var errors = await ErrorsOf(response);
        Assert.True(errors.TryGetProperty("batchSize", out _) && errors.TryGetProperty("imageSize", out _), errors.ToString());
        var body = await response.Content.ReadAsStringAsync();
        var total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1 << 20);
        Assert.DoesNotContain(total.ToString("N0", CultureInfo.CurrentCulture), body, StringComparison.Ordinal);
        Assert.DoesNotContain(total.ToString(CultureInfo.InvariantCulture), body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 512)]
    [InlineData(1, 1024)]
    [InlineData(8, 224)]
    [InlineData(128, 96)]
    [InlineData(1, 67)]
    public void The_test_pass_needs_no_more_memory_than_a_training_step(int batchSize, int imageSize)
    {
        var eval = TrainingMemory.EvaluationBatchSize(NetworkArchitectures.Nin, batchSize, imageSize);
        Assert.InRange(eval, 1, 256);
        Assert.True(TrainingMemory.EstimateEvaluationBytes(NetworkArchitectures.Nin, eval, imageSize) <= Math.Max(TrainingMemory.EstimateBytes(NetworkArchitectures.Nin, batchSize, imageSize), TrainingMemory.EstimateEvaluationBytes(NetworkArchitectures.Nin, 1, imageSize)));
    }

    [Fact]
    public void The_trainer_evaluates_in_batches_bounded_by_the_training_step()
    {
        // The reviewed request: batch 1 at 512 px with 128 test images evaluated all 128 at once (2.5 GB).
        var data = BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, 1, 128);
        using var network = new NinNetwork(1, 10);
        using var trainer = new Trainer(network, data, new TrainingOptions { BatchSize = 1, ImageSize = 512, Epochs = 1 }, CPU);
        Assert.Equal(TrainingMemory.EvaluationBatchSize(NetworkArchitectures.Nin, 1, 512), trainer.EvaluationBatchSize);
        Assert.True(trainer.EvaluationBatchSize <= 3, $"{trainer.EvaluationBatchSize}");
        Assert.True(TrainingMemory.EstimateEvaluationBytes(NetworkArchitectures.Nin, trainer.EvaluationBatchSize, 512) <= TrainingMemory.EstimateBytes(NetworkArchitectures.Nin, 1, 512));
    }
}
