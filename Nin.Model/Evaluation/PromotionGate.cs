using System.Globalization;

namespace Nin.Model.Evaluation;

/// <summary>
/// The promotion gate's thresholds: a candidate may be at most <see cref="MaxAccuracyDrop"/> points of accuracy below the
/// active version, and must have at least as many classes with recall at or above <see cref="RecallFloor"/> as it has.
/// </summary>
public sealed record PromotionRules(double MaxAccuracyDrop = 1.0, double RecallFloor = 0.5);

/// <summary>
/// The version asked to become the served one: its warnings (a run that did not learn), and its evaluation on the
/// compared split, or why it has none (<paramref name="NotEvaluated"/>).
/// </summary>
public sealed record PromotionCandidate(string Name, int Version, IReadOnlyList<string>? Warnings, ModelEvaluation? Evaluation, string? NotEvaluated = null);

/// <summary>
/// The served version: its evaluation on the same split as the candidate's (same classes in the same order), or why it
/// has none (<paramref name="NotCompared"/>). <paramref name="OtherTask"/>: it classifies other classes (or other
/// channels) than the candidate, so it cannot be measured on the candidate's split at all.
/// </summary>
public sealed record PromotionIncumbent(string Name, int Version, ModelEvaluation? Evaluation, string? NotCompared = null, bool OtherTask = false);

/// <summary>Why the gate refuses: <see cref="Code"/> is one of <see cref="PromotionGate"/>'s reason codes.</summary>
public sealed record PromotionReason(string Code, string Detail);

/// <summary>One side's figures on the compared split: accuracy and how many classes reach the recall floor.</summary>
public sealed record PromotionFigures(string Name, int Version, double Accuracy, int ClassesAboveFloor, int TestImages);

/// <summary>
/// The gate's answer. <see cref="ComparedOn"/>: <c>same-split</c> (both evaluations were made on one test split),
/// <c>candidate-split</c> (the active version was measured on the candidate's split for this comparison; <see cref="Note"/>
/// says why), <c>not-compared</c> (nothing to compare against, or it could not be measured; <see cref="Note"/> says
/// why) or <c>same-version</c>. <see cref="PerClass"/>: each class's recall and precision, a = the active version,
/// b = the candidate, as <c>GET /models/{name}/compare</c> gives them.
/// </summary>
public sealed record PromotionDecision(
    bool Allowed,
    IReadOnlyList<PromotionReason> Reasons,
    string ComparedOn,
    string? Note,
    PromotionFigures? Candidate,
    PromotionFigures? Active,
    double? AccuracyDelta,
    IReadOnlyList<ClassDelta> PerClass);

/// <summary>
/// Whether a candidate version may replace the served one. Pure: the evaluations come in, a decision goes out; the API
/// finds, makes and measures them. The rules, in order:
/// <list type="bullet">
/// <item>the active version itself: allowed (activating it again changes nothing);</item>
/// <item>a candidate flagged as not having learned (its warnings): refused (<c>did-not-learn</c>), even when nothing is served; the
/// two reasons below that say a figure is missing are then left out (such a candidate is not evaluated for the gate);</item>
/// <item>nothing served: allowed (the first activation), whatever else is known;</item>
/// <item>a candidate without an evaluation: refused (<c>not-evaluated</c>), there is nothing to judge it by;</item>
/// <item>an active version of another task (other classes or channels): allowed, not compared, and said so;</item>
/// <item>an active version that could not be measured on the candidate's split: refused (<c>not-compared</c>);</item>
/// <item>accuracy more than <see cref="PromotionRules.MaxAccuracyDrop"/> points below the active version's: refused (<c>accuracy</c>);</item>
/// <item>fewer classes with recall ≥ <see cref="PromotionRules.RecallFloor"/> than the active version: refused (<c>recall-floor</c>).</item>
/// </list>
/// </summary>
public static class PromotionGate
{
    public const string DidNotLearn = "did-not-learn";
    public const string NotEvaluated = "not-evaluated";
    public const string NotCompared = "not-compared";
    public const string Accuracy = "accuracy";
    public const string RecallFloorReason = "recall-floor";

    public const string SameSplit = "same-split";
    public const string CandidateSplit = "candidate-split";
    public const string NoComparison = "not-compared";
    public const string SameVersion = "same-version";

    /// <summary>
    /// Decides. <paramref name="active"/> is null when nothing is served; <paramref name="comparedOn"/> and
    /// <paramref name="note"/> say where the two evaluations come from (both are passed through).
    /// </summary>
    public static PromotionDecision Decide(PromotionCandidate candidate, PromotionIncumbent? active, PromotionRules rules, string comparedOn = SameSplit, string? note = null)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(rules);
        var candidateFigures = Figures(candidate.Name, candidate.Version, candidate.Evaluation, rules);
        if (active is not null && active.Name == candidate.Name && active.Version == candidate.Version)
        {
            return new(true, [], SameVersion, "It is the active version already.", candidateFigures, candidateFigures, 0, []);
        }

        var reasons = new List<PromotionReason>();
        if (candidate.Warnings is { Count: > 0 } warnings)
        {
            reasons.Add(new(DidNotLearn, $"{candidate.Name} version {candidate.Version} was flagged when it was trained: {string.Join(" ", warnings)}"));
        }

        if (active is null)
        {
            return new(reasons.Count == 0, reasons, NoComparison, "Nothing is served: there is no version to compare with.", candidateFigures, null, null, []);
        }

        // A candidate refused as not having learned is not evaluated or measured for the gate: that reason alone stands.
        if (candidate.Evaluation is null)
        {
            if (reasons.Count == 0)
            {
                reasons.Add(new(NotEvaluated, candidate.NotEvaluated ?? $"{candidate.Name} version {candidate.Version} has no evaluation to judge it by."));
            }

            return Decision(reasons, NoComparison, note, candidateFigures, null, null, []);
        }

        if (active.Evaluation is null)
        {
            var why = active.NotCompared ?? $"{active.Name} version {active.Version} has no evaluation on the candidate's test split.";
            if (!active.OtherTask && reasons.Count == 0)
            {
                reasons.Add(new(NotCompared, why));
            }

            return Decision(reasons, NoComparison, why, candidateFigures, null, null, []);
        }

        var (a, b) = (active.Evaluation, candidate.Evaluation);
        if (!a.Classes.SequenceEqual(b.Classes, StringComparer.Ordinal))
        {
            throw new ArgumentException("The two evaluations must have the same classes in the same order (one test split).", nameof(active));
        }

        var activeFigures = Figures(active.Name, active.Version, a, rules)!;
        var perClass = VersionComparison.ClassDeltas(a, b);
        var drop = (a.Accuracy - b.Accuracy) * 100;
        if (drop > rules.MaxAccuracyDrop)
        {
            reasons.Add(new(Accuracy, string.Create(CultureInfo.InvariantCulture,
                $"Its accuracy {b.Accuracy:P2} is {drop:F2} points below the active version's {a.Accuracy:P2} on the same {b.TestImages} test images; at most {rules.MaxAccuracyDrop:0.##} points are allowed.")));
        }

        if (candidateFigures!.ClassesAboveFloor < activeFigures.ClassesAboveFloor)
        {
            var fell = perClass.Where(d => d.RecallA >= rules.RecallFloor && d.RecallB < rules.RecallFloor)
                .Select(d => string.Create(CultureInfo.InvariantCulture, $"'{d.Name}' {d.RecallA:F2} → {d.RecallB:F2}"));
            reasons.Add(new(RecallFloorReason, string.Create(CultureInfo.InvariantCulture,
                $"{candidateFigures.ClassesAboveFloor} of its classes have a recall of at least {rules.RecallFloor:0.##}, against {activeFigures.ClassesAboveFloor} of the active version's; below it now: {string.Join(", ", fell)}.")));
        }

        return Decision(reasons, comparedOn, note, candidateFigures, activeFigures, b.Accuracy - a.Accuracy, perClass);
    }

    private static PromotionDecision Decision(List<PromotionReason> reasons, string comparedOn, string? note, PromotionFigures? candidate, PromotionFigures? active, double? delta, IReadOnlyList<ClassDelta> perClass) =>
        new(reasons.Count == 0, reasons, comparedOn, note, candidate, active, delta, perClass);

    private static PromotionFigures? Figures(string name, int version, ModelEvaluation? evaluation, PromotionRules rules) =>
        evaluation is null ? null : new(name, version, evaluation.Accuracy, evaluation.PerClass.Count(c => c.Recall >= rules.RecallFloor), evaluation.TestImages);
}
