using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Api;

/// <summary>
/// A request that stops waiting (cancelled, timed out) releases its model while its images are still queued; if that
/// version is retired meanwhile, the queued images must keep the network alive until their passes have ended.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class InferenceEngineLifetimeTests : IDisposable
{
    private readonly NinApiFactory factory = new(new Dictionary<string, string?>
    {
        ["Nin:SeedDefaultModel"] = "false",
        ["Serving:Workers"] = "1",
        ["Serving:MaxBatchSize"] = "1",
    });

    public void Dispose() => factory.Dispose();

    private static LoadedModel Random(string name, int seed)
    {
        manual_seed(seed);
        var network = new NinNetwork(1, 10);
        network.eval();
        var metadata = new ModelMetadata { Name = name, Version = 1, ClassNames = Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames, ImageSize = 67, Preprocessing = new PreprocessingInfo() };
        return new LoadedModel(name, 1, new TorchModelRunner(network, metadata, CPU), metadata);
    }

    private static InferenceInput[] Images(int count) =>
        Enumerable.Range(0, count).Select(i => new InferenceInput(TestImages.FashionTest.Pixels.AsSpan(i * 784, 784).ToArray(), null)).ToArray();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_retired_version_lives_until_the_queued_images_of_a_caller_that_gave_up_are_done(bool timeout)
    {
        var engine = factory.Services.GetRequiredService<InferenceEngine>();
        var failedBefore = engine.Stats.FailedPasses;
        var cancelledBefore = engine.Stats.CancelledImages;

        // Another model's request keeps the single worker busy, so what follows stays queued.
        var busy = Random("busy", 1);
        Assert.True(busy.TryAcquire());
        var busyTask = engine.InferAsync(busy, Images(48));

        var retired = Random("retired", 2);
        Assert.True(retired.TryAcquire());
        using var cts = timeout ? new CancellationTokenSource(TimeSpan.FromMilliseconds(1)) : new CancellationTokenSource();
        var given = engine.InferAsync(retired, Images(16), cts.Token);
        if (!timeout)
        {
            await cts.CancelAsync();
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => given);

        // What the endpoint does when WaitAsync gives up: release its reference; and an activation retires the version.
        retired.Release();
        retired.Retire();
        Assert.False(retired.IsDisposed, "the network was disposed while 16 of its images were still queued");

        await busyTask;
        busy.Release();
        for (var i = 0; i < 200 && !retired.IsDisposed; i++)
        {
            await Task.Delay(50);
        }

        Assert.True(retired.IsDisposed, "the last queued image released the retired network");
        Assert.Equal(failedBefore, engine.Stats.FailedPasses);
        Assert.Equal(cancelledBefore + 16, engine.Stats.CancelledImages);
        busy.Retire();
    }
}
