using Nin.Model.Checkpoints;

namespace Nin.Model.Training;

/// <summary>A run whose loss became NaN or infinite: it cannot give a usable model.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>Whether a finished run learned anything, in words a user can act on.</summary>
public static class TrainingOutcome
{
    /// <summary>Train loss still at or above this share of ln K (a uniform guess) after the first epoch: nothing learned.</summary>
    public const double StuckLossShare = 0.97;

    /// <summary>Test accuracy at or below chance plus this: nothing learned.</summary>
    public const double ChanceMargin = 0.05;

    /// <summary>Warnings for a run over <paramref name="classes"/> classes; empty when it learned.</summary>
    public static IReadOnlyList<string> Warnings(IReadOnlyList<EpochMetrics> epochs, int classes)
    {
        var warnings = new List<string>();
        if (epochs.Count == 0)
        {
            return warnings;
        }

        var last = epochs[^1];
        var lnK = Math.Log(classes);
        const string Advice = "try the robust recipe or a lower learning rate";
        if (last.Epoch > 1 && last.TrainLoss >= StuckLossShare * lnK)
        {
            warnings.Add(FormattableString.Invariant(
                $"did not learn: train loss {last.TrainLoss:F3} after epoch {last.Epoch} is still at ln {classes} = {lnK:F3} (a uniform guess); {Advice}."));
        }

        var chance = 1.0 / classes;
        if (last.TestAccuracy <= chance + ChanceMargin)
        {
            warnings.Add(FormattableString.Invariant(
                $"did not learn: test accuracy {last.TestAccuracy:F3} is at chance (1/{classes} = {chance:F3}); {Advice}."));
        }

        return warnings;
    }
}
