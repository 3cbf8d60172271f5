using Nin.Model.Evaluation;

namespace Nin.Api.Tests.Model;

/// <summary>Two versions' predictions compared image by image (<see cref="VersionComparison"/>), on predictions made by hand.</summary>
[UnitTests]
public sealed class VersionComparisonTests
{
    private static readonly string[] Pets = ["cat", "dog", "bird"];

    // index:           0  1  2  3  4  5  6  7
    private static readonly int[] Labels = [0, 0, 1, 1, 2, 2, 0, 1];

    // a is right at 0, 2, 4, 7; b at 0, 1, 3, 4, 5, 7. Fixed 1, 3, 5; broken 2; 6 is wrong in both, with another label.
    private static readonly int[] PredictedA = [0, 1, 1, 0, 2, 1, 2, 1];
    private static readonly int[] PredictedB = [0, 0, 0, 1, 2, 2, 1, 1];

    private static ComparedVersion Version(int version, int[] predicted, string? dataset = "pets", string[]? classes = null, int[]? labels = null) =>
        new(version, dataset, classes ?? Pets, new TestPredictions(labels ?? Labels, predicted, [.. predicted.Select(_ => 0.5f)]));

    [Fact]
    public void Fixed_and_broken_images_are_counted_exactly_in_index_order()
    {
        var comparison = VersionComparison.Compare(Version(1, PredictedA), Version(2, PredictedB));

        Assert.Equal([new ChangedPrediction(1, 0, 1, 0), new ChangedPrediction(3, 1, 0, 1), new ChangedPrediction(5, 2, 1, 2)], comparison.Fixed);
        Assert.Equal([new ChangedPrediction(2, 1, 1, 0)], comparison.Broken);
        Assert.Equal(1, comparison.ChangedWrong);
        Assert.Equal(0.5, comparison.A.Accuracy);
        Assert.Equal(0.75, comparison.B.Accuracy);
        Assert.Equal(0.25, comparison.AccuracyDelta); // (3 fixed − 1 broken) / 8
        Assert.Equal(Pets, comparison.Classes);
    }

    [Fact]
    public void Recall_and_precision_deltas_are_b_minus_a_per_class()
    {
        var comparison = VersionComparison.Compare(Version(1, PredictedA), Version(2, PredictedB));

        // Recall: cats (0, 1, 6) 1/3 → 2/3; dogs (2, 3, 7) 2/3 → 2/3; birds (4, 5) 1/2 → 1.
        // Precision: a called 0, 3 cat; 1, 2, 5, 7 dog; 4, 6 bird. b called 0, 1, 2 cat; 3, 6, 7 dog; 4, 5 bird.
        Assert.Equal(
            [
                new ClassDelta("cat", 3, 1.0 / 3, 2.0 / 3, (2.0 / 3) - (1.0 / 3), 1.0 / 2, 2.0 / 3, (2.0 / 3) - (1.0 / 2)),
                new ClassDelta("dog", 3, 2.0 / 3, 2.0 / 3, 0, 2.0 / 4, 2.0 / 3, (2.0 / 3) - (2.0 / 4)),
                new ClassDelta("bird", 2, 1.0 / 2, 1, 0.5, 1.0 / 2, 1, 0.5),
            ],
            comparison.PerClass);
        Assert.Equal([[1, 1, 1], [1, 2, 0], [0, 1, 1]], comparison.A.Confusion);
        Assert.Equal([[2, 1, 0], [1, 2, 0], [0, 0, 2]], comparison.B.Confusion);
    }

    [Fact]
    public void A_version_against_itself_changes_nothing()
    {
        var comparison = VersionComparison.Compare(Version(2, PredictedB), Version(2, PredictedB));

        Assert.Empty(comparison.Fixed);
        Assert.Empty(comparison.Broken);
        Assert.Equal(0, comparison.ChangedWrong);
        Assert.Equal(0, comparison.AccuracyDelta);
        Assert.All(comparison.PerClass, c => Assert.Equal((0.0, 0.0), (c.RecallDelta, c.PrecisionDelta)));
        Assert.Equal(comparison.A.Confusion, comparison.B.Confusion);
    }

    [Fact]
    public void The_accuracy_change_is_always_fixed_minus_broken_over_the_test_images()
    {
        var random = new Random(26);
        for (var round = 0; round < 20; round++)
        {
            var n = random.Next(1, 400);
            var labels = Enumerable.Range(0, n).Select(_ => random.Next(5)).ToArray();
            int[] Guess() => [.. labels.Select(l => random.NextDouble() < 0.6 ? l : random.Next(5))];
            var classes = new[] { "a", "b", "c", "d", "e" };
            var comparison = VersionComparison.Compare(Version(1, Guess(), classes: classes, labels: labels), Version(2, Guess(), classes: classes, labels: labels));

            Assert.Equal((comparison.Fixed.Count - comparison.Broken.Count) / (double)n, comparison.AccuracyDelta, 12);
            Assert.All(comparison.Fixed, c => Assert.True(c.PredictedA != c.TrueLabel && c.PredictedB == c.TrueLabel));
            Assert.All(comparison.Broken, c => Assert.True(c.PredictedA == c.TrueLabel && c.PredictedB != c.TrueLabel));
            Assert.True(comparison.Fixed.Concat(comparison.Broken).Select(c => c.Index).Distinct().Count() == comparison.Fixed.Count + comparison.Broken.Count);
        }
    }

    [Fact]
    public void Versions_of_another_dataset_class_list_or_split_are_not_compared_and_the_conflict_says_which()
    {
        var a = Version(1, PredictedA);
        Assert.Null(VersionComparison.Conflict(a, Version(2, PredictedB)));
        Assert.Null(VersionComparison.Conflict(a, Version(2, PredictedB, dataset: null))); // an unrecorded dataset is not a difference

        var dataset = VersionComparison.Conflict(a, Version(2, PredictedB, dataset: "u-other"));
        Assert.Equal("dataset", dataset?.Differs);
        Assert.Contains("'u-other'", dataset!.Detail, StringComparison.Ordinal);

        Assert.Equal("classes", VersionComparison.Conflict(a, Version(2, PredictedB, classes: ["cat", "dog"], labels: [0, 0, 1, 1, 1, 1, 0, 1]))?.Differs);
        var reordered = VersionComparison.Conflict(a, Version(2, PredictedB, classes: ["dog", "cat", "bird"]));
        Assert.Equal("classes", reordered?.Differs);
        Assert.Contains("another order", reordered!.Detail, StringComparison.Ordinal);
        var renamed = VersionComparison.Conflict(a, Version(2, PredictedB, classes: ["cat", "dog", "fish"]));
        Assert.Contains("Class 2 is 'bird' in version 1 and 'fish' in version 2", renamed!.Detail, StringComparison.Ordinal);

        var fewer = VersionComparison.Conflict(a, Version(2, [0, 0, 1], labels: [0, 0, 1]));
        Assert.Equal("testImages", fewer?.Differs);
        Assert.Contains("8 test images and version 2 on 3", fewer!.Detail, StringComparison.Ordinal);

        var relabelled = VersionComparison.Conflict(a, Version(2, PredictedB, labels: [0, 0, 1, 1, 2, 2, 0, 2]));
        Assert.Equal("labels", relabelled?.Differs);
        Assert.Contains("Test image 7", relabelled!.Detail, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => VersionComparison.Compare(a, Version(2, PredictedB, dataset: "u-other")));
    }
}
