using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Evaluation;

namespace Nin.Api.Models;

/// <summary>
/// Single test images as PNG, for the thumbnails a comparison links to (<c>GET .../samples/{index}</c>). A page shows
/// dozens at once, so each is cheap: PNGs are kept by dataset and index (the image is the same for every version of
/// one split) up to <see cref="MaxCachedBytes"/>; the test split read for a miss is kept for <see cref="SplitLifetime"/>
/// so the other thumbnails of the same page do not read it again; splits are read one at a time.
/// </summary>
public sealed class TestSampleThumbnails(ModelEvaluator evaluator) : IDisposable
{
    public const long MaxCachedBytes = 8L * 1024 * 1024;

    public static readonly TimeSpan SplitLifetime = TimeSpan.FromSeconds(60);

    private readonly SemaphoreSlim reading = new(1, 1);
    private readonly Lock gate = new();
    private readonly ByteCache pngs = new(MaxCachedBytes);
    private (string Key, ImageDataset Test, long Stamp)? split;
    private long clock;
    private long reads;

    /// <summary>How many test splits were read since start, for tests.</summary>
    public long SplitReads => Interlocked.Read(ref reads);

    /// <summary>
    /// The PNG of test image <paramref name="index"/> of the split <paramref name="info"/> was evaluated on, or null when
    /// the split has no such image. Throws <see cref="EvaluationUnavailableException"/> when the dataset is not here.
    /// </summary>
    public async Task<byte[]?> GetAsync(ModelVersionInfo info, int index, CancellationToken cancellationToken)
    {
        var recipe = info.Metadata.Recipe;
        var testCount = recipe?.TestImages > 0 ? recipe.TestImages : (int?)null;
        if (index < 0 || index >= testCount)
        {
            return null;
        }

        var dataset = recipe?.Dataset ?? "";
        var key = $"{dataset}|{index}";
        if (pngs.TryGet(key, out var hit))
        {
            return hit;
        }

        await reading.WaitAsync(cancellationToken);
        try
        {
            if (pngs.TryGet(key, out var rendered))
            {
                return rendered; // a request before this one read the split and drew it
            }

            var test = await SplitAsync(info, $"{dataset}|{testCount}", cancellationToken);
            if (index >= test.Count)
            {
                return null;
            }

            var png = TestSampleImages.Png(test, index);
            pngs.Add(key, png);
            return png;
        }
        finally
        {
            reading.Release();
        }
    }

    public void Dispose() => reading.Dispose();

    private async Task<ImageDataset> SplitAsync(ModelVersionInfo info, string key, CancellationToken cancellationToken)
    {
        lock (gate)
        {
            if (split is { } kept && kept.Key == key)
            {
                return kept.Test;
            }
        }

        var test = await evaluator.LoadTestSetAsync(info.Metadata, cancellationToken);
        Interlocked.Increment(ref reads);
        long stamp;
        lock (gate)
        {
            stamp = ++clock;
            split = (key, test, stamp);
        }

        // Dropped after a while, so a split read for one page does not stay in memory for good.
        _ = Task.Delay(SplitLifetime, CancellationToken.None).ContinueWith(
            _ =>
            {
                lock (gate)
                {
                    if (split?.Stamp == stamp)
                    {
                        split = null;
                    }
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
        return test;
    }
}
