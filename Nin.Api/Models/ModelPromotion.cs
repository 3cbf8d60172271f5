using Microsoft.Extensions.Options;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;

namespace Nin.Api.Models;

/// <summary>The promotion gate's settings (docs/models.md, "Promotion gate"). Bound from the <c>Promotion</c> section.</summary>
public sealed class PromotionOptions
{
    public const string SectionName = "Promotion";

    /// <summary>Whether activations (POST .../activate, a training job's or an import's <c>activate</c>) pass the gate. Default on.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Most accuracy, in percentage points of the compared test split, a candidate may lose against the active version. Default 1.</summary>
    public double MaxAccuracyDrop { get; set; } = 1.0;

    /// <summary>
    /// The recall a class must reach to count as recognised; a candidate must have at least as many such classes as the
    /// active version. Default 0.5.
    /// </summary>
    public double RecallFloor { get; set; } = 0.5;

    /// <summary>
    /// Whether a missing evaluation is made inline: the candidate's on its own test split (stored, as POST .../evaluate
    /// would), the active version's on the candidate's split (not stored). Off: a candidate without an evaluation is
    /// refused, an active version without one on the candidate's split cannot be compared (refused). Default on.
    /// </summary>
    public bool EvaluateMissing { get; set; } = true;

    /// <summary>
    /// Longest the inline evaluations of one decision may take together, in seconds; beyond it the activation is refused
    /// (409) and says to evaluate first. Below <c>Security:RequestTimeoutSeconds</c> (60) so the answer comes before the request times out.
    /// Default 30.
    /// </summary>
    public int EvaluationTimeoutSeconds { get; set; } = 30;

    public PromotionRules Rules() => new(MaxAccuracyDrop, RecallFloor);
}

/// <summary>
/// Finds and, when missing, makes the two evaluations the promotion gate (<see cref="PromotionGate"/>) compares: the
/// candidate's on its test split, and the active version's on the same split. Stored evaluations of one split are used
/// as they are (no inference). When the active version's evaluation is missing or was made on another split (another
/// dataset, another number of test images), the active version is measured on the candidate's split, its classes matched
/// by name, and the decision says so (<c>comparedOn: candidate-split</c>).
/// </summary>
public sealed partial class ModelPromotion(ModelStore store, ModelEvaluator evaluator, IOptions<PromotionOptions> options, ILogger<ModelPromotion> logger)
{
    public PromotionOptions Options => options.Value;

    /// <summary>
    /// The gate's decision for making <paramref name="candidate"/> the served version. <paramref name="evaluateMissing"/>
    /// (and <see cref="PromotionOptions.EvaluateMissing"/>): make missing evaluations inline, together bounded by
    /// <see cref="PromotionOptions.EvaluationTimeoutSeconds"/>; otherwise only what is stored counts.
    /// </summary>
    public async Task<PromotionDecision> DecideAsync(ModelVersionInfo candidate, bool evaluateMissing, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var rules = o.Rules();
        var evaluate = evaluateMissing && o.EvaluateMissing;

        // One deadline for whatever is evaluated inline (the candidate, then the active version), so the answer comes in time.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(o.EvaluationTimeoutSeconds));
        var active = store.Active is { } pointer ? store.Find(pointer.Name, pointer.Version) : null;
        var learned = candidate.Metadata.Warnings is not { Count: > 0 };
        if (active is null || (active.Name == candidate.Name && active.Version == candidate.Version))
        {
            var self = active is null ? null : new PromotionIncumbent(active.Name, active.Version, null);
            return PromotionGate.Decide(new PromotionCandidate(candidate.Name, candidate.Version, candidate.Metadata.Warnings, Read(candidate)?.Evaluation), self, rules);
        }

        // The candidate on its own split: stored, else made now (and stored, as POST .../evaluate would). A run that did
        // not learn is refused whatever it scores, so it is not evaluated for that.
        var (own, notEvaluated) = Read(candidate) is { } stored ? (stored, null) : await EvaluateCandidateAsync(candidate, evaluate && learned, deadline, cancellationToken);
        var side = own is null ? null : Side(candidate, own.Value.Evaluation, own.Value.Predictions);
        var candidateEntry = new PromotionCandidate(candidate.Name, candidate.Version, candidate.Metadata.Warnings, null, notEvaluated);
        if (side is null)
        {
            return PromotionGate.Decide(candidateEntry, new PromotionIncumbent(active.Name, active.Version, null), rules);
        }

        var ownFigures = ModelEvaluation.FromPredictions(side.Classes, side.Predictions, side.Dataset);

        // The active version on the same split: its stored evaluation when it is of that split, else measured on it.
        string? differs = null;
        if (Read(active) is { } activeStored)
        {
            var activeSide = Side(active, activeStored.Evaluation, activeStored.Predictions);
            if (VersionComparison.Conflict(activeSide, side) is not { } conflict)
            {
                return Decide(VersionComparison.Compare(activeSide, side), candidateEntry, active, rules, PromotionGate.SameSplit, null);
            }

            differs = conflict.Detail;
        }

        var why = differs is null ? $"{active.Name} version {active.Version} has no evaluation" : $"the versions were evaluated on different test splits ({differs})";
        if (OtherTask(active, candidate) is { } other)
        {
            return PromotionGate.Decide(candidateEntry with { Evaluation = ownFigures },
                new PromotionIncumbent(active.Name, active.Version, null, $"Not compared: {other}", OtherTask: true), rules);
        }

        if (!evaluate || !learned)
        {
            var notMade = learned ? "evaluations are not made here (Promotion:EvaluateMissing is off, or the activation was forced)" : "it is not measured for a candidate that did not learn";
            return PromotionGate.Decide(candidateEntry with { Evaluation = ownFigures },
                new PromotionIncumbent(active.Name, active.Version, null, $"Not compared: {why}, and {notMade}."), rules);
        }

        var (measured, failure) = await MeasureActiveAsync(active, candidate, side, deadline, cancellationToken);
        if (measured is null)
        {
            return PromotionGate.Decide(candidateEntry with { Evaluation = ownFigures },
                new PromotionIncumbent(active.Name, active.Version, null, $"Not compared: {why}, and measuring {active.Name} version {active.Version} on the candidate's split failed: {failure}"), rules);
        }

        var note = $"{char.ToUpperInvariant(why[0])}{why[1..]}: {active.Name} version {active.Version} was measured on the candidate's test split ('{side.Dataset}', {side.Predictions.Labels.Count} images) for this comparison.";
        return Decide(VersionComparison.Compare(measured, side), candidateEntry, active, rules, PromotionGate.CandidateSplit, note);
    }

    private static PromotionDecision Decide(VersionComparison comparison, PromotionCandidate candidate, ModelVersionInfo active, PromotionRules rules, string comparedOn, string? note) =>
        PromotionGate.Decide(candidate with { Evaluation = comparison.B }, new PromotionIncumbent(active.Name, active.Version, comparison.A), rules, comparedOn, note);

    private static (ModelEvaluation Evaluation, TestPredictions Predictions)? Read(ModelVersionInfo info) =>
        EvaluationFiles.ReadEvaluation(info.Directory) is { } evaluation
        && EvaluationFiles.ReadPredictions(info.Directory) is { } predictions
        && predictions.IsConsistent(info.Metadata.ClassNames.Count)
            ? (evaluation, predictions)
            : null;

    private static ComparedVersion Side(ModelVersionInfo info, ModelEvaluation evaluation, TestPredictions predictions) =>
        new(info.Version, evaluation.Dataset ?? info.Metadata.Recipe?.Dataset, info.Metadata.ClassNames, predictions);

    /// <summary>Why <paramref name="active"/> cannot run on <paramref name="candidate"/>'s split at all (other classes or channels), or null.</summary>
    private static string? OtherTask(ModelVersionInfo active, ModelVersionInfo candidate)
    {
        var (a, c) = (active.Metadata, candidate.Metadata);
        if (a.ClassNames.Count != c.ClassNames.Count || !a.ClassNames.Order(StringComparer.Ordinal).SequenceEqual(c.ClassNames.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            return $"{active.Name} version {active.Version} classifies other classes ({a.ClassNames.Count}) than the candidate ({c.ClassNames.Count}), so neither can be measured on the other's test split.";
        }

        return a.InputChannels != c.InputChannels
            ? $"{active.Name} version {active.Version} takes {a.InputChannels}-channel images and the candidate {c.InputChannels}-channel ones, so it cannot be measured on the candidate's test split."
            : null;
    }

    private async Task<((ModelEvaluation Evaluation, TestPredictions Predictions)? Result, string? Why)> EvaluateCandidateAsync(
        ModelVersionInfo candidate, bool evaluate, CancellationTokenSource timeout, CancellationToken cancellationToken)
    {
        var post = $"POST /models/{candidate.Name}/versions/{candidate.Version}/evaluate, then activate it again";
        if (!evaluate)
        {
            return (null, $"{candidate.Name} version {candidate.Version} has no evaluation to judge it by: {post}.");
        }

        var seconds = options.Value.EvaluationTimeoutSeconds;
        try
        {
            var test = await evaluator.LoadTestSetAsync(candidate.Metadata, timeout.Token);
            await evaluator.EvaluateAsync(candidate, test, timeout.Token);
            LogEvaluated(logger, candidate.Name, candidate.Version);
            return Read(candidate) is { } made ? (made, null) : (null, $"{candidate.Name} version {candidate.Version}'s evaluation could not be stored: {post}.");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return (null, $"{candidate.Name} version {candidate.Version} has no evaluation, and making one took longer than the gate's {seconds} s (Promotion:EvaluationTimeoutSeconds): {post}.");
        }
        catch (Exception ex) when (ex is EvaluationUnavailableException or CheckpointException or ArgumentException or IOException)
        {
            return (null, $"{candidate.Name} version {candidate.Version} has no evaluation and cannot be evaluated here: {ex.Message}");
        }
    }

    /// <summary>
    /// <paramref name="active"/> run over the candidate's test split (its dataset, as many images as the candidate's
    /// predictions), its predicted classes mapped to the candidate's by name; or why it could not be.
    /// </summary>
    private async Task<(ComparedVersion? Side, string? Why)> MeasureActiveAsync(
        ModelVersionInfo active, ModelVersionInfo candidate, ComparedVersion split, CancellationTokenSource timeout, CancellationToken cancellationToken)
    {
        if (split.Dataset is null)
        {
            return (null, "the candidate's evaluation records no dataset.");
        }

        var seconds = options.Value.EvaluationTimeoutSeconds;
        try
        {
            var recipe = candidate.Metadata.Recipe ?? new TrainingRecipe { Dataset = split.Dataset };
            var test = await evaluator.LoadTestSetAsync(
                candidate.Metadata with { Recipe = recipe with { Dataset = split.Dataset, TestImages = split.Predictions.Labels.Count } }, timeout.Token);
            if (test.Count != split.Predictions.Labels.Count || Enumerable.Range(0, test.Count).Any(i => test.Labels[i] != split.Predictions.Labels[i]))
            {
                return (null, $"dataset '{split.Dataset}' here is not the split the candidate was evaluated on (its images or labels differ).");
            }

            var (_, predictions) = await evaluator.MeasureAsync(active, test, timeout.Token);
            var index = candidate.Metadata.ClassNames.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
            var mapped = predictions.Predicted.Select(p => index[active.Metadata.ClassNames[p]]).ToArray();
            LogMeasured(logger, active.Name, active.Version, split.Dataset, test.Count);
            return (new ComparedVersion(active.Version, split.Dataset, candidate.Metadata.ClassNames, new TestPredictions(split.Predictions.Labels, mapped, predictions.Probability)), null);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return (null, $"it took longer than the gate's {seconds} s (Promotion:EvaluationTimeoutSeconds, with the candidate's own evaluation if that was made too); evaluate both versions on one split first (POST .../evaluate).");
        }
        catch (Exception ex) when (ex is EvaluationUnavailableException or CheckpointException or ArgumentException or IOException)
        {
            return (null, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Promotion gate: evaluated candidate {Model} version {Version} on its test split")]
    private static partial void LogEvaluated(ILogger logger, string model, int version);

    [LoggerMessage(Level = LogLevel.Information, Message = "Promotion gate: measured active {Model} version {Version} on the candidate's split ({Dataset}, {TestImages} images)")]
    private static partial void LogMeasured(ILogger logger, string model, int version, string dataset, int testImages);
}
