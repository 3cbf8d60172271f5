using Nin.Model.Evaluation;

namespace Nin.Api.Tests.Model;

[UnitTests]
public sealed class ModelEvaluationTests
{
    [Fact]
    public void Figures_follow_from_the_confusion_matrix_rows_true_columns_predicted()
    {
        // 4 cats: 3 right, 1 called dog. 2 dogs: both called cat. 0 birds, and nothing called bird.
        var evaluation = ModelEvaluation.FromConfusion(["cat", "dog", "bird"], new[,] { { 3, 1, 0 }, { 2, 0, 0 }, { 0, 0, 0 } }, "pets");

        Assert.Equal(6, evaluation.TestImages);
        Assert.Equal(0.5, evaluation.Accuracy, 12);
        Assert.Equal([3, 1, 0], evaluation.Confusion[0]);
        Assert.Equal(new ClassFigures("cat", 3.0 / 5, 3.0 / 4, 4), evaluation.PerClass[0]);
        Assert.Equal(new ClassFigures("dog", 0, 0, 2), evaluation.PerClass[1]); // predicted once, wrongly
        Assert.Equal(new ClassFigures("bird", 0, 0, 0), evaluation.PerClass[2]); // never seen, never predicted: 0, not NaN
        Assert.Equal("pets", evaluation.Dataset);
    }

    [Fact]
    public void A_matrix_of_the_wrong_shape_is_refused()
    {
        Assert.Throws<ArgumentException>(() => ModelEvaluation.FromConfusion(["a", "b"], new int[3, 3], null));
    }

    [Fact]
    public void Samples_list_the_most_confident_mistakes_first_then_the_right_ones_in_order()
    {
        var predictions = new TestPredictions([0, 1, 1, 0, 1], [0, 0, 1, 1, 0], [0.9f, 0.6f, 0.8f, 0.95f, 0.7f]);
        Assert.Equal([3, 4, 1, 0, 2], TestSampleOrder.Misclassified(predictions, [0, 1, 1, 0, 1]));
    }

    [Fact]
    public void Damaged_predictions_are_not_consistent()
    {
        Assert.True(new TestPredictions([0, 1], [1, 1], [0.5f, 0.9f]).IsConsistent(2));
        Assert.False(new TestPredictions([0, 1], [1], [0.5f, 0.9f]).IsConsistent(2));
        Assert.False(new TestPredictions([0, 2], [1, 1], [0.5f, 0.9f]).IsConsistent(2));
        Assert.False(new TestPredictions([0, 1], [-1, 1], [0.5f, 0.9f]).IsConsistent(2));
    }
}
