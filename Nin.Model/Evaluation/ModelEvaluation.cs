namespace Nin.Model.Evaluation;

/// <summary>One class's figures on the test split.</summary>
public sealed record ClassFigures(string Name, double Precision, double Recall, int Support);

/// <summary>
/// How a model version does on its dataset's test split: the confusion matrix (rows = true class, columns =
/// predicted class), per-class precision, recall and support, and the accuracy (the diagonal over the total).
/// Stored as <c>evaluation.json</c> in the version's folder.
/// </summary>
public sealed record ModelEvaluation
{
    public required IReadOnlyList<string> Classes { get; init; }

    public required IReadOnlyList<IReadOnlyList<int>> Confusion { get; init; }

    public required IReadOnlyList<ClassFigures> PerClass { get; init; }

    public double Accuracy { get; init; }

    public int TestImages { get; init; }

    /// <summary>The dataset whose test split was used.</summary>
    public string? Dataset { get; init; }

    public DateTimeOffset EvaluatedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The figures of a test pass's predictions (as a training run's last test pass left them).</summary>
    public static ModelEvaluation FromPredictions(IReadOnlyList<string> classes, TestPredictions predictions, string? dataset)
    {
        if (!predictions.IsConsistent(classes.Count))
        {
            throw new ArgumentException("The predictions do not fit the classes.", nameof(predictions));
        }

        var confusion = new int[classes.Count, classes.Count];
        for (var i = 0; i < predictions.Labels.Count; i++)
        {
            confusion[predictions.Labels[i], predictions.Predicted[i]]++;
        }

        return FromConfusion(classes, confusion, dataset);
    }

    /// <summary>The figures of a confusion matrix (rows = true class, columns = predicted).</summary>
    public static ModelEvaluation FromConfusion(IReadOnlyList<string> classes, int[,] confusion, string? dataset)
    {
        var k = classes.Count;
        if (confusion.GetLength(0) != k || confusion.GetLength(1) != k)
        {
            throw new ArgumentException($"The confusion matrix must be {k}×{k}.", nameof(confusion));
        }

        var rows = new List<IReadOnlyList<int>>(k);
        var perClass = new List<ClassFigures>(k);
        long total = 0, diagonal = 0;
        for (var t = 0; t < k; t++)
        {
            var row = new int[k];
            for (var p = 0; p < k; p++)
            {
                row[p] = confusion[t, p];
                total += row[p];
            }

            diagonal += confusion[t, t];
            rows.Add(row);
        }

        for (var c = 0; c < k; c++)
        {
            int support = 0, predicted = 0;
            for (var i = 0; i < k; i++)
            {
                support += confusion[c, i];
                predicted += confusion[i, c];
            }

            var right = confusion[c, c];
            perClass.Add(new ClassFigures(classes[c], predicted == 0 ? 0 : (double)right / predicted, support == 0 ? 0 : (double)right / support, support));
        }

        return new ModelEvaluation
        {
            Classes = [.. classes],
            Confusion = rows,
            PerClass = perClass,
            Accuracy = total == 0 ? 0 : (double)diagonal / total,
            TestImages = (int)total,
            Dataset = dataset,
        };
    }
}

/// <summary>What the model said about each test image, in the test split's order (stored as <c>predictions.json</c>).</summary>
public sealed record TestPredictions(IReadOnlyList<int> Labels, IReadOnlyList<int> Predicted, IReadOnlyList<float> Probability)
{
    /// <summary>Whether the three lists line up and every label is one of <paramref name="classes"/> (a damaged file is not).</summary>
    public bool IsConsistent(int classes) =>
        Labels is not null && Predicted is not null && Probability is not null
        && Labels.Count == Predicted.Count && Labels.Count == Probability.Count
        && Labels.All(l => l >= 0 && l < classes) && Predicted.All(p => p >= 0 && p < classes);
}
