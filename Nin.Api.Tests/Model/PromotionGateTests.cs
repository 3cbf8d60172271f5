using Nin.Model.Evaluation;

namespace Nin.Api.Tests.Model;

/// <summary>The promotion gate's decision (<see cref="PromotionGate"/>) on evaluations made by hand.</summary>
[UnitTests]
public sealed class PromotionGateTests
{
    private static readonly string[] Pets = ["cat", "dog", "bird"];
    private static readonly PromotionRules Rules = new(MaxAccuracyDrop: 1.0, RecallFloor: 0.5);

    // 10 images a class: the recalls given, as right answers out of 10 (wrong answers go to the next class).
    private static ModelEvaluation Evaluation(params int[] rightOf10)
    {
        var confusion = new int[3, 3];
        for (var c = 0; c < 3; c++)
        {
            confusion[c, c] = rightOf10[c];
            confusion[c, (c + 1) % 3] = 10 - rightOf10[c];
        }

        return ModelEvaluation.FromConfusion(Pets, confusion, "pets");
    }

    private static PromotionCandidate Candidate(ModelEvaluation? evaluation, params string[] warnings) =>
        new("pets", 2, warnings.Length == 0 ? null : warnings, evaluation);

    private static PromotionIncumbent Active(ModelEvaluation? evaluation, string? notCompared = null, bool otherTask = false) =>
        new("pets", 1, evaluation, notCompared, otherTask);

    [Fact]
    public void The_first_activation_is_allowed_even_without_an_evaluation()
    {
        var decision = PromotionGate.Decide(Candidate(null), active: null, Rules);

        Assert.True(decision.Allowed);
        Assert.Empty(decision.Reasons);
        Assert.Equal(PromotionGate.NoComparison, decision.ComparedOn);
        Assert.Null(decision.Active);
    }

    [Fact]
    public void Activating_the_active_version_again_is_allowed_whatever_it_is()
    {
        var decision = PromotionGate.Decide(new PromotionCandidate("pets", 1, ["did not learn: at chance"], null), Active(Evaluation(9, 9, 9)), Rules);

        Assert.True(decision.Allowed);
        Assert.Equal(PromotionGate.SameVersion, decision.ComparedOn);
    }

    [Fact]
    public void A_candidate_that_did_not_learn_is_refused_even_when_nothing_is_served_and_even_when_it_scores_better()
    {
        var first = PromotionGate.Decide(Candidate(Evaluation(9, 9, 9), "did not learn: train loss at ln 3."), active: null, Rules);
        Assert.False(first.Allowed);
        Assert.Equal([PromotionGate.DidNotLearn], first.Reasons.Select(r => r.Code));
        Assert.Contains("train loss at ln 3", first.Reasons[0].Detail, StringComparison.Ordinal);

        var better = PromotionGate.Decide(Candidate(Evaluation(9, 9, 9), "did not learn: at chance."), Active(Evaluation(5, 5, 5)), Rules);
        Assert.False(better.Allowed);
        Assert.Equal([PromotionGate.DidNotLearn], better.Reasons.Select(r => r.Code));

        // Not evaluated or not compared for it: that reason alone is given.
        Assert.Equal([PromotionGate.DidNotLearn], PromotionGate.Decide(Candidate(null, "did not learn."), Active(Evaluation(5, 5, 5)), Rules).Reasons.Select(r => r.Code));
        Assert.Equal([PromotionGate.DidNotLearn], PromotionGate.Decide(Candidate(Evaluation(1, 1, 1), "did not learn."), Active(null, "not measured"), Rules).Reasons.Select(r => r.Code));
    }

    [Fact]
    public void A_better_or_equal_candidate_passes_with_both_figures_and_the_per_class_changes()
    {
        var decision = PromotionGate.Decide(Candidate(Evaluation(8, 9, 7)), Active(Evaluation(8, 8, 6)), Rules);

        Assert.True(decision.Allowed);
        Assert.Equal(PromotionGate.SameSplit, decision.ComparedOn);
        Assert.Equal(0.8, decision.Candidate!.Accuracy, 12);
        Assert.Equal(22 / 30.0, decision.Active!.Accuracy, 12);
        Assert.Equal(0.8 - (22 / 30.0), decision.AccuracyDelta!.Value, 12);
        Assert.Equal(["cat", "dog", "bird"], decision.PerClass.Select(d => d.Name));
        Assert.Equal([0.0, 0.1, 0.1], decision.PerClass.Select(d => Math.Round(d.RecallDelta, 12)));
        Assert.All(decision.PerClass, d => Assert.Equal(10, d.Support));
    }

    [Fact]
    public void A_drop_within_the_margin_passes_and_one_beyond_it_is_refused_with_both_accuracies()
    {
        // 30 images: one more mistake is 3.33 points.
        Assert.True(PromotionGate.Decide(Candidate(Evaluation(8, 8, 8)), Active(Evaluation(8, 8, 8)), Rules).Allowed);
        Assert.True(PromotionGate.Decide(Candidate(Evaluation(8, 8, 7)), Active(Evaluation(8, 8, 8)), Rules with { MaxAccuracyDrop = 3.4 }).Allowed);

        var worse = PromotionGate.Decide(Candidate(Evaluation(8, 8, 7)), Active(Evaluation(8, 8, 8)), Rules);
        Assert.False(worse.Allowed);
        Assert.Equal([PromotionGate.Accuracy], worse.Reasons.Select(r => r.Code));
        Assert.Contains("3.33 points below", worse.Reasons[0].Detail, StringComparison.Ordinal);
        Assert.Equal((0.7667, 0.8), (Math.Round(worse.Candidate!.Accuracy, 4), Math.Round(worse.Active!.Accuracy, 4)));
        Assert.Equal(-0.1, worse.PerClass[2].RecallDelta, 12);
    }

    [Fact]
    public void Fewer_classes_above_the_recall_floor_are_refused_even_at_equal_accuracy()
    {
        // Same accuracy (24/30), but 'bird' falls from 0.6 to 0.4 while 'cat' rises.
        var decision = PromotionGate.Decide(Candidate(Evaluation(10, 10, 4)), Active(Evaluation(9, 9, 6)), Rules with { MaxAccuracyDrop = 0 });

        Assert.False(decision.Allowed);
        Assert.Equal([PromotionGate.RecallFloorReason], decision.Reasons.Select(r => r.Code));
        Assert.Equal((2, 3), (decision.Candidate!.ClassesAboveFloor, decision.Active!.ClassesAboveFloor));
        Assert.Contains("'bird' 0.60 → 0.40", decision.Reasons[0].Detail, StringComparison.Ordinal);

        // The floor counts classes, not which: another class rising above it makes up for one falling below.
        Assert.True(PromotionGate.Decide(Candidate(Evaluation(10, 6, 4)), Active(Evaluation(9, 4, 6)), Rules with { MaxAccuracyDrop = 0 }).Allowed);
    }

    [Fact]
    public void Every_reason_is_listed_together()
    {
        var decision = PromotionGate.Decide(Candidate(Evaluation(1, 1, 1), "did not learn: at chance."), Active(Evaluation(9, 9, 9)), Rules);

        Assert.Equal([PromotionGate.DidNotLearn, PromotionGate.Accuracy, PromotionGate.RecallFloorReason], decision.Reasons.Select(r => r.Code));
    }

    [Fact]
    public void A_candidate_without_an_evaluation_is_refused_with_the_reason_given()
    {
        var decision = PromotionGate.Decide(new PromotionCandidate("pets", 2, null, null, "its dataset is not on this server."), Active(Evaluation(9, 9, 9)), Rules);

        Assert.False(decision.Allowed);
        Assert.Equal(PromotionGate.NotEvaluated, Assert.Single(decision.Reasons).Code);
        Assert.Equal("its dataset is not on this server.", decision.Reasons[0].Detail);
    }

    [Fact]
    public void An_active_version_that_could_not_be_measured_refuses_and_one_of_another_task_is_not_compared()
    {
        var unmeasured = PromotionGate.Decide(Candidate(Evaluation(9, 9, 9)), Active(null, "the evaluation did not finish in 30 s."), Rules);
        Assert.False(unmeasured.Allowed);
        Assert.Equal(PromotionGate.NotCompared, Assert.Single(unmeasured.Reasons).Code);

        var other = PromotionGate.Decide(Candidate(Evaluation(2, 2, 2)), Active(null, "it classifies 10 other classes.", otherTask: true), Rules);
        Assert.True(other.Allowed);
        Assert.Equal(PromotionGate.NoComparison, other.ComparedOn);
        Assert.Equal("it classifies 10 other classes.", other.Note);
    }

    [Fact]
    public void Where_the_figures_come_from_is_passed_through()
    {
        var decision = PromotionGate.Decide(Candidate(Evaluation(9, 9, 9)), Active(Evaluation(8, 8, 8)), Rules, PromotionGate.CandidateSplit, "measured on the candidate's split");

        Assert.Equal((PromotionGate.CandidateSplit, "measured on the candidate's split"), (decision.ComparedOn, decision.Note));
        Assert.Throws<ArgumentException>(() => PromotionGate.Decide(
            Candidate(Evaluation(9, 9, 9)), Active(ModelEvaluation.FromConfusion(["dog", "cat", "bird"], new int[3, 3], "pets")), Rules));
    }
}
