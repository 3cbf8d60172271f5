namespace Nin.Model.Evaluation;

/// <summary>The order test images are shown in: misclassified first, the most confident mistakes first, then the rest in order.</summary>
public static class TestSampleOrder
{
    public static int[] Misclassified(TestPredictions predictions, IReadOnlyList<int> labels)
    {
        var indices = Enumerable.Range(0, predictions.Predicted.Count);
        var wrong = indices.Where(i => predictions.Predicted[i] != labels[i]).OrderByDescending(i => predictions.Probability[i]).ThenBy(i => i);
        var right = indices.Where(i => predictions.Predicted[i] == labels[i]);
        return [.. wrong, .. right];
    }
}
