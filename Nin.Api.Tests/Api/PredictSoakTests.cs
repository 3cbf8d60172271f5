using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Api;

/// <summary>Runs alone (no other test collection in parallel), so process memory and live tensors are its own.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoakCollection
{
    public const string Name = "soak";
}

/// <summary>
/// 10,000 small /predict requests at concurrency 8 against a 67 px model, served by TorchSharp (the engine whose
/// tensors can leak; ONNX Runtime is the CPU default, so the engine is set here): every request answers and every tensor
/// is disposed (an exact count, not a threshold). Duration and working set are printed, not asserted (no timed or
/// machine-dependent thresholds in the suite); <c>./nin bench predict</c> and <c>./nin bench memory</c> measure those.
/// </summary>
[Collection(SoakCollection.Name)]
[HostTests]
public sealed class PredictSoakTests(ITestOutputHelper output)
{
    private const int WarmUp = 2000; // the allocator's arenas grow over the first couple of thousand requests, then stay flat
    private const int Total = 10_000;
    private const int Concurrency = 8;

    [Fact]
    public async Task Ten_thousand_predictions_on_the_TorchSharp_engine_leave_no_tensor_behind()
    {
        var home = Directory.CreateTempSubdirectory("nin-soak-").FullName;
        try
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            ServingFixture.AddRandom(store, "alpha", seed: 1);
            store.Activate("alpha", 1);
            using var factory = new NinApiFactory(new Dictionary<string, string?>
            {
                ["Nin:SeedDefaultModel"] = "false",
                ["RateLimiting:Enabled"] = "false",
                ["Serving:Engine"] = TorchModelRunner.EngineName,
            }, home);
            using var client = factory.CreateClient();
            Assert.Equal(TorchModelRunner.EngineName, factory.Services.GetRequiredService<ModelRegistry>().Engine);
            var images = Enumerable.Range(0, 64).Select(i => TestImages.FashionImage(i)).ToArray();
            var failures = 0;

            async Task RunAsync(int from, int count)
            {
                var next = from - 1;
                var end = from + count;
                await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < end)
                    {
                        using var form = PredictApiTests.Form(("images", $"{i}.png", images[i % images.Length], "image/png"));
                        using var response = await client.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), form);
                        if (response.StatusCode != HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref failures);
                        }
                    }
                }));
            }

            var clock = Stopwatch.StartNew();
            await RunAsync(0, WarmUp);
            var (memoryBefore, tensorsBefore) = Measure();
            var half = (Total + WarmUp) / 2;
            await RunAsync(WarmUp, half - WarmUp);
            var (memoryHalf, _) = Measure();
            await RunAsync(half, Total - half);
            var elapsed = clock.Elapsed;

            // Tensors are disposed by the serving loop's scope; give a finishing batch a moment.
            var (memoryAfter, tensorsAfter) = Measure();
            for (var wait = 0; tensorsAfter > tensorsBefore && wait < 50; wait++)
            {
                await Task.Delay(100);
                (memoryAfter, tensorsAfter) = Measure();
            }

            var growthMb = (memoryAfter - memoryBefore) / (1024.0 * 1024.0);
            output.WriteLine($"{Total} requests (concurrency {Concurrency}) in {elapsed.TotalSeconds:F1} s, {Total / elapsed.TotalSeconds:F0} req/s");
            output.WriteLine($"working set after warm-up {memoryBefore / 1048576.0:F1} MB, after {half} requests {memoryHalf / 1048576.0:F1} MB, after {Total} {memoryAfter / 1048576.0:F1} MB, growth {growthMb:F1} MB; managed heap {GC.GetTotalMemory(false) / 1048576.0:F1} MB");
            output.WriteLine($"live tensors after warm-up {tensorsBefore}, after {tensorsAfter}; failures {failures}");
            Assert.Equal(0, failures);
            Assert.Equal(tensorsBefore, tensorsAfter);
        }
        finally
        {
            try
            {
                Directory.Delete(home, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static (long WorkingSet, long Tensors) Measure()
    {
        for (var i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return (process.WorkingSet64, TorchSharp.torch.Tensor.TotalCount);
    }
}
