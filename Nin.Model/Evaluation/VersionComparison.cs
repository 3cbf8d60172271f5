namespace Nin.Model.Evaluation;

/// <summary>One side of a comparison: a version's number, the dataset and class names of its evaluation, and its stored predictions.</summary>
public sealed record ComparedVersion(int Version, string? Dataset, IReadOnlyList<string> Classes, TestPredictions Predictions);

/// <summary>Why two versions cannot be compared image by image: <see cref="Differs"/> names what (<c>dataset</c>, <c>classes</c>, <c>testImages</c> or <c>labels</c>).</summary>
public sealed record ComparisonConflict(string Differs, string Detail);

/// <summary>One class's recall and precision in version a and in version b, and the change (b − a).</summary>
public sealed record ClassDelta(string Name, int Support, double RecallA, double RecallB, double RecallDelta, double PrecisionA, double PrecisionB, double PrecisionDelta);

/// <summary>A test image whose prediction changed between the two versions: its index in the test split, true label and both predictions (class indices).</summary>
public sealed record ChangedPrediction(int Index, int TrueLabel, int PredictedA, int PredictedB);

/// <summary>
/// Two evaluated versions on the same test split, image by image: both evaluations (computed from the stored
/// predictions, as GET .../evaluation's are), the accuracy change and each class's recall and precision change (b − a),
/// the images <see cref="Fixed"/> (wrong in a, right in b) and <see cref="Broken"/> (right in a, wrong in b) in index
/// order, and how many were wrong in both but with another label (<see cref="ChangedWrong"/>). Pure: no files, no
/// network; <c>GET /models/{name}/compare</c> reads the files and shapes the answer.
/// </summary>
public sealed record VersionComparison(
    IReadOnlyList<string> Classes,
    ModelEvaluation A,
    ModelEvaluation B,
    double AccuracyDelta,
    IReadOnlyList<ClassDelta> PerClass,
    IReadOnlyList<ChangedPrediction> Fixed,
    IReadOnlyList<ChangedPrediction> Broken,
    int ChangedWrong)
{
    /// <summary>
    /// What keeps <paramref name="a"/> and <paramref name="b"/> from being compared on one test split, or null when they
    /// can be: the same dataset (when both record one), the same class names in the same order, as many test images,
    /// and the same true label at every index.
    /// </summary>
    public static ComparisonConflict? Conflict(ComparedVersion a, ComparedVersion b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Dataset is not null && b.Dataset is not null && !string.Equals(a.Dataset, b.Dataset, StringComparison.Ordinal))
        {
            return new("dataset", $"Version {a.Version} was evaluated on dataset '{a.Dataset}' and version {b.Version} on '{b.Dataset}'.");
        }

        if (!a.Classes.SequenceEqual(b.Classes, StringComparer.Ordinal))
        {
            return new("classes", ClassesDetail(a, b));
        }

        var (na, nb) = (a.Predictions.Labels.Count, b.Predictions.Labels.Count);
        if (na != nb)
        {
            return new("testImages", $"Version {a.Version} was evaluated on {na} test images and version {b.Version} on {nb}.");
        }

        for (var i = 0; i < na; i++)
        {
            if (a.Predictions.Labels[i] != b.Predictions.Labels[i])
            {
                return new("labels", $"Test image {i} is labelled '{a.Classes[a.Predictions.Labels[i]]}' in version {a.Version}'s evaluation and '{b.Classes[b.Predictions.Labels[i]]}' in version {b.Version}'s: they were not evaluated on the same test split.");
            }
        }

        return null;
    }

    /// <summary>Compares <paramref name="a"/> with <paramref name="b"/>; throws when <see cref="Conflict"/> names a difference.</summary>
    public static VersionComparison Compare(ComparedVersion a, ComparedVersion b)
    {
        if (Conflict(a, b) is { } conflict)
        {
            throw new ArgumentException(conflict.Detail, nameof(b));
        }

        var classes = a.Classes;
        var evaluationA = ModelEvaluation.FromPredictions(classes, a.Predictions, a.Dataset);
        var evaluationB = ModelEvaluation.FromPredictions(classes, b.Predictions, b.Dataset ?? a.Dataset);
        var perClass = ClassDeltas(evaluationA, evaluationB);

        var labels = a.Predictions.Labels;
        var (pa, pb) = (a.Predictions.Predicted, b.Predictions.Predicted);
        var fixedImages = new List<ChangedPrediction>();
        var broken = new List<ChangedPrediction>();
        var changedWrong = 0;
        for (var i = 0; i < labels.Count; i++)
        {
            bool rightA = pa[i] == labels[i], rightB = pb[i] == labels[i];
            if (!rightA && rightB)
            {
                fixedImages.Add(new(i, labels[i], pa[i], pb[i]));
            }
            else if (rightA && !rightB)
            {
                broken.Add(new(i, labels[i], pa[i], pb[i]));
            }
            else if (!rightA && pa[i] != pb[i])
            {
                changedWrong++;
            }
        }

        return new VersionComparison(classes, evaluationA, evaluationB, evaluationB.Accuracy - evaluationA.Accuracy, perClass, fixedImages, broken, changedWrong);
    }

    /// <summary>Each class's recall and precision in <paramref name="a"/> and <paramref name="b"/> (evaluations of one test split, the same classes in the same order) and the change (b − a).</summary>
    public static IReadOnlyList<ClassDelta> ClassDeltas(ModelEvaluation a, ModelEvaluation b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return [.. a.PerClass.Zip(b.PerClass, (x, y) => new ClassDelta(
            x.Name, x.Support, x.Recall, y.Recall, y.Recall - x.Recall, x.Precision, y.Precision, y.Precision - x.Precision))];
    }

    private static string ClassesDetail(ComparedVersion a, ComparedVersion b)
    {
        if (a.Classes.Count != b.Classes.Count)
        {
            return $"Version {a.Version} has {a.Classes.Count} classes and version {b.Version} has {b.Classes.Count}.";
        }

        if (a.Classes.Order(StringComparer.Ordinal).SequenceEqual(b.Classes.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            return $"Versions {a.Version} and {b.Version} have the same class names in another order, so their class indices mean different classes.";
        }

        var i = Enumerable.Range(0, a.Classes.Count).First(k => !string.Equals(a.Classes[k], b.Classes[k], StringComparison.Ordinal));
        return $"Class {i} is '{a.Classes[i]}' in version {a.Version} and '{b.Classes[i]}' in version {b.Version}.";
    }
}
