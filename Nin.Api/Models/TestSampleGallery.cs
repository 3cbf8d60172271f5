using System.Collections.Concurrent;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;

namespace Nin.Api.Models;

/// <summary>
/// The labelled test images of evaluated versions, rendered once per evaluation: the first
/// <see cref="EvaluationApi.MaxSamples"/> in the order they are shown (misclassified first, the most confident
/// mistakes first), from which every <c>limit</c> and <c>onlyWrong</c> takes a prefix. The test split is read once per
/// evaluation (up to the last image shown), not per request; concurrent first requests share one build, and the
/// galleries of the most recently asked <see cref="MaxVersions"/> versions are kept (a few hundred KB each).
/// </summary>
public sealed class TestSampleGallery(ModelEvaluator evaluator)
{
    public const int MaxVersions = 32;

    private readonly ConcurrentDictionary<string, Lazy<Task<Gallery>>> building = new();
    private readonly Dictionary<string, (Gallery Gallery, long Used)> cache = [];
    private readonly Lock gate = new();
    private long clock;
    private long builds;

    /// <summary>A version's gallery: its test-image count, how many were misclassified, and the first items in order.</summary>
    public sealed record Gallery(int TestImages, int Misclassified, IReadOnlyList<TestSample> Items, string? OutOfDate = null);

    /// <summary>How many galleries were rendered since start (each one a read of a test split), for metrics and tests.</summary>
    public long Builds => Interlocked.Read(ref builds);

    public async Task<Gallery> GetAsync(ModelVersionInfo info, TestPredictions predictions, CancellationToken cancellationToken)
    {
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(info.Directory, EvaluationFiles.PredictionsFile)).Ticks;
        var key = $"{info.Directory}|{info.Metadata.WeightsSha256}|{stamp}";
        lock (gate)
        {
            if (cache.TryGetValue(key, out var hit))
            {
                cache[key] = (hit.Gallery, ++clock);
                return hit.Gallery;
            }
        }

        var lazy = building.GetOrAdd(key, k => new Lazy<Task<Gallery>>(() => BuildAndKeepAsync(k, info, predictions)));
        return await lazy.Value.WaitAsync(cancellationToken);
    }

    private async Task<Gallery> BuildAndKeepAsync(string key, ModelVersionInfo info, TestPredictions predictions)
    {
        try
        {
            var gallery = await BuildAsync(info, predictions);
            lock (gate)
            {
                if (cache.Count >= MaxVersions)
                {
                    cache.Remove(cache.MinBy(e => e.Value.Used).Key);
                }

                cache[key] = (gallery, ++clock);
            }

            return gallery;
        }
        finally
        {
            building.TryRemove(key, out _);
        }
    }

    private async Task<Gallery> BuildAsync(ModelVersionInfo info, TestPredictions predictions)
    {
        Interlocked.Increment(ref builds);
        // The order needs only the stored labels and predictions; the images are read up to the last one shown.
        var labels = predictions.Labels;
        var order = TestSampleOrder.Misclassified(predictions, labels);
        var misclassified = order.Count(i => predictions.Predicted[i] != labels[i]);
        var chosen = order.Take(EvaluationApi.MaxSamples).ToArray();
        if (chosen.Length == 0)
        {
            return new Gallery(labels.Count, misclassified, []);
        }

        var test = await evaluator.LoadTestSetAsync(info.Metadata, CancellationToken.None, chosen.Max() + 1);
        if (chosen.Any(i => i >= test.Count || test.Labels[i] != labels[i]))
        {
            return new Gallery(labels.Count, misclassified, [], "The test split no longer matches the stored evaluation; evaluate the version again.");
        }

        var classes = info.Metadata.ClassNames;
        var items = chosen.Select(i => new TestSample(
            i,
            classes[labels[i]],
            classes[predictions.Predicted[i]],
            predictions.Probability[i],
            predictions.Predicted[i] == labels[i],
            "data:image/png;base64," + Convert.ToBase64String(TestSampleImages.Png(test, i)))).ToArray();
        return new Gallery(labels.Count, misclassified, items);
    }
}
