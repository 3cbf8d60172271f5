using System.Diagnostics;
using Nin.Api.Serving;
using Nin.Api.Tests.Api;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;

namespace Nin.Api.Tests.Model;

/// <summary>
/// Per-request shortcuts of the serving path hold to what they stand for: <see cref="ModelStore.LatestVersion"/> (a request
/// naming a model but no version) follows versions added or removed by this process at once and by another one sharing
/// the folder within the cache age; ONNX Runtime's pooled input buffer never lets one pass see another's pixels.
/// </summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class LatestVersionCacheTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("nin-latest-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void The_latest_version_follows_adds_and_deletes_here_and_in_another_process()
    {
        var store = new ModelStore(root);
        var other = new ModelStore(root); // another replica sharing the folder
        Assert.Null(store.LatestVersion("m"));
        Assert.Null(store.LatestVersion("Not A Name"));

        ServingFixture.AddRandom(store, "m", seed: 1);
        Assert.Equal(1, store.LatestVersion("m"));
        ServingFixture.AddRandom(store, "m", seed: 2);
        Assert.Equal(2, store.LatestVersion("m")); // this process's own add: at once

        ServingFixture.AddRandom(other, "m", seed: 3);
        Assert.Equal(3, WaitFor(() => store.LatestVersion("m"), 3));

        Assert.Equal(DeleteResult.Deleted, store.Delete("m", 3));
        Assert.Equal(2, store.LatestVersion("m")); // own delete: at once

        Assert.Equal(DeleteResult.Deleted, other.Delete("m", 2));
        Assert.Equal(1, WaitFor(() => store.LatestVersion("m"), 1));
    }

    [Fact]
    public void A_latest_version_damaged_in_place_is_passed_over_within_the_cache_age()
    {
        var store = new ModelStore(root);
        ServingFixture.AddRandom(store, "m", seed: 1);
        ServingFixture.AddRandom(store, "m", seed: 2);
        Assert.Equal(2, store.LatestVersion("m"));

        // The folder's listing does not change, so only the cache age brings the change in.
        File.WriteAllText(Path.Combine(store.Find("m", 2)!.Directory, "model.json"), "{ not json");
        Assert.Equal(1, WaitFor(() => store.LatestVersion("m"), 1));
        Assert.Equal(1, store.Latest("m")!.Version); // the uncached answer agrees
    }

    [Fact]
    public void A_pass_after_a_bigger_one_sees_only_its_own_pixels()
    {
        var store = new ModelStore(root);
        ServingFixture.AddRandom(store, "m", seed: 4);
        var info = store.Find("m", 1)!;
        using var runner = new OnnxModelRunner(OnnxCache.Ensure(info.Directory), info.Metadata, [1], cuda: false, spinning: false);

        var random = new Random(5);
        byte[] Image()
        {
            var pixels = new byte[28 * 28];
            random.NextBytes(pixels);
            return pixels;
        }

        var images = Enumerable.Range(0, 4).Select(_ => new InferenceInput(Image(), null)).ToArray();
        var alone = images.Select(i => runner.Run([i], 1)).ToArray(); // each image on its own
        var batch = runner.Run(images, 1);                              // then all four in one (bigger) pass
        var again = runner.Run([images[2]], 1);                         // and one again, in a buffer that held four

        for (var i = 0; i < images.Length; i++)
        {
            Assert.Equal(alone[i], batch.AsSpan(i * 10, 10).ToArray(), (a, b) => Math.Abs(a - b) < 1e-5f);
        }

        Assert.Equal(alone[2], again);
        Assert.NotEqual(alone[0], alone[1]); // the images differ, so a mix-up would show
    }

    private static int? WaitFor(Func<int?> read, int expected)
    {
        var deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency * 3 * (long)ActiveModelFile.MaxCacheAge.TotalSeconds);
        int? seen;
        while ((seen = read()) != expected && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(20);
        }

        return seen;
    }
}
