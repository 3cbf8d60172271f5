using Nin.Model.Checkpoints;
using Nin.Model.Experiments;

namespace Nin.Api.Sweeps;

/// <summary>
/// The names a sweep may search and optimise: the training request's fields with their kinds, and the per-epoch metrics
/// with their direction. One table for validation, the OpenAPI text and the rules.
/// </summary>
public static class SweepMetrics
{
    public const string TestAccuracy = "testAccuracy";
    public const string TrainAccuracy = "trainAccuracy";
    public const string TrainLoss = "trainLoss";

    public static readonly IReadOnlyList<string> Metrics = [TestAccuracy, TrainAccuracy, TrainLoss];

    public static readonly IReadOnlyList<string> Methods = ["grid", "random"];

    public static readonly IReadOnlyList<string> Rules = ["median", "asha", "none"];

    public const int MaxTrials = 100;

    public const int DefaultRandomTrials = 10;

    /// <summary>The training request's fields a sweep may vary, with how their values are read.</summary>
    public static readonly IReadOnlyDictionary<string, ParameterKind> Parameters = new Dictionary<string, ParameterKind>
    {
        ["learningRate"] = ParameterKind.Number,
        ["batchSize"] = ParameterKind.Integer,
        ["weightDecay"] = ParameterKind.Number,
        ["epochs"] = ParameterKind.Integer,
        ["momentum"] = ParameterKind.Number,
        ["recipe"] = ParameterKind.Text,
        ["architecture"] = ParameterKind.Text,
        ["schedule"] = ParameterKind.Text,
        ["shift"] = ParameterKind.Number,
        ["flip"] = ParameterKind.Boolean,
        ["labelSmoothing"] = ParameterKind.Number,
        ["imageSize"] = ParameterKind.Integer,
        ["seed"] = ParameterKind.Integer,
    };

    /// <summary>Higher is better for accuracies, lower for the loss.</summary>
    public static bool Maximise(string metric) => metric != TrainLoss;

    /// <summary>An epoch's value of <paramref name="metric"/> as it is reported.</summary>
    public static double Value(EpochMetrics epoch, string metric) => metric switch
    {
        TrainAccuracy => epoch.TrainAccuracy,
        TrainLoss => epoch.TrainLoss,
        _ => epoch.TestAccuracy,
    };

    /// <summary>An epoch's value oriented so that higher is better (what the rules and the best-trial choice compare).</summary>
    public static double Oriented(EpochMetrics epoch, string metric)
    {
        var value = Value(epoch, metric);
        return Maximise(metric) ? value : -value;
    }

    public static StoppingPolicy Policy(EarlyStoppingSettings settings) => new(
        settings.Rule switch { "median" => StoppingRule.Median, "asha" => StoppingRule.Asha, _ => StoppingRule.None },
        settings.GraceEpochs, settings.MinTrials, settings.ReductionFactor);
}
