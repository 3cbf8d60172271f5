using System.Globalization;

namespace Nin.Model.Experiments;

/// <summary>The rules that end a sweep's trial early: none, the median stopping rule, or asynchronous successive halving.</summary>
public enum StoppingRule
{
    None,
    Median,
    Asha,
}

/// <summary>
/// How a sweep stops its unpromising trials. <see cref="GraceEpochs"/>: no trial is judged before it has trained this many
/// epochs (for ASHA, the first rung). <see cref="MinTrials"/>: how many other trials must have reached the same epoch
/// before a trial is judged against them. <see cref="ReductionFactor"/> (ASHA's η): rungs at grace·η^k epochs, and at
/// each rung only the top 1/η of the trials that reached it go on.
/// </summary>
public sealed record StoppingPolicy(StoppingRule Rule, int GraceEpochs = 1, int MinTrials = 2, int ReductionFactor = 3)
{
    public static readonly StoppingPolicy Default = new(StoppingRule.Median);

    public const int MaxGraceEpochs = 1000;
    public const int MaxMinTrials = 100;
    public const int MinReductionFactor = 2;
    public const int MaxReductionFactor = 10;

    /// <summary>ASHA's rungs below <paramref name="maxEpochs"/>: grace, grace·η, grace·η², ….</summary>
    public IEnumerable<int> Rungs(int maxEpochs)
    {
        for (long rung = GraceEpochs; rung < maxEpochs; rung *= ReductionFactor)
        {
            yield return (int)rung;
        }
    }
}

/// <summary>
/// One trial's metric after each epoch it trained (index 0: epoch 1), oriented so that higher is better (a loss is
/// negated), as the rules compare them. <see cref="Trial"/> is its number in the sweep.
/// </summary>
public sealed record TrialCurve(int Trial, IReadOnlyList<double> Values);

/// <summary>Why a trial stops: the rule's name (<c>median</c>, <c>asha</c>) and a sentence with the figures.</summary>
public sealed record StopVerdict(string Rule, string Reason);

/// <summary>
/// The stopping rules, as pure functions of the curves (the trial's and the other trials' so far), so every worker that
/// runs a trial reaches the same verdict from the shared job records.
/// <list type="bullet">
/// <item><b>Median</b> (Golovin et al. 2017, Google Vizier): after epoch k ≥ grace, a trial stops when its best value so far
/// is below the median of the other trials' running averages over their first k epochs (at least <c>MinTrials</c> of them
/// having reached epoch k).</item>
/// <item><b>ASHA</b> (Li et al. 2020, as Ray Tune's AsyncHyperBand): at each rung r (grace·η^k epochs) a trial stops when
/// its value at epoch r is below the (1 − 1/η) quantile of the values at epoch r of the other trials that reached it (at
/// least <c>MinTrials</c>), i.e. it is not in their top 1/η.</item>
/// </list>
/// </summary>
public static class EarlyStopping
{
    /// <summary>The verdict for <paramref name="trial"/> after its latest epoch, or null to go on.</summary>
    public static StopVerdict? Judge(StoppingPolicy policy, TrialCurve trial, IEnumerable<TrialCurve> others, int maxEpochs, string metric, bool maximise)
    {
        var epoch = trial.Values.Count;
        if (epoch == 0 || epoch >= maxEpochs || epoch < policy.GraceEpochs)
        {
            return null; // nothing to judge, or the trial has already finished its epochs
        }

        var peers = others.Where(o => o.Trial != trial.Trial && o.Values.Count >= epoch).ToList();
        if (peers.Count < policy.MinTrials)
        {
            return null;
        }

        return policy.Rule switch
        {
            StoppingRule.Median => Median(trial, peers, epoch, metric, maximise),
            StoppingRule.Asha => Asha(policy, trial, peers, epoch, maxEpochs, metric, maximise),
            _ => null,
        };
    }

    private static StopVerdict? Median(TrialCurve trial, List<TrialCurve> peers, int epoch, string metric, bool maximise)
    {
        var best = trial.Values.Max();
        var median = Median(peers.Select(p => p.Values.Take(epoch).Average()).ToList());
        if (!(best < median))
        {
            return null;
        }

        return new StopVerdict("median", string.Create(CultureInfo.InvariantCulture,
            $"median rule: its best {metric} by epoch {epoch}, {Shown(best, maximise)}, is {(maximise ? "below" : "above")} the median {Shown(median, maximise)} of {peers.Count} other trials' running averages over their first {epoch} epoch(s)."));
    }

    private static StopVerdict? Asha(StoppingPolicy policy, TrialCurve trial, List<TrialCurve> peers, int epoch, int maxEpochs, string metric, bool maximise)
    {
        if (!policy.Rungs(maxEpochs).Contains(epoch))
        {
            return null;
        }

        var value = trial.Values[epoch - 1];
        var cutoff = Quantile(peers.Select(p => p.Values[epoch - 1]).ToList(), 1 - (1.0 / policy.ReductionFactor));
        if (!(value < cutoff))
        {
            return null;
        }

        return new StopVerdict("asha", string.Create(CultureInfo.InvariantCulture,
            $"ASHA: its {metric} at the epoch-{epoch} rung, {Shown(value, maximise)}, is not in the top 1/{policy.ReductionFactor} of the {peers.Count} other trials that reached it ({(maximise ? "cut-off" : "cut-off")} {Shown(cutoff, maximise)})."));
    }

    /// <summary>The metric as users read it (a minimised metric was negated for comparing).</summary>
    private static string Shown(double oriented, bool maximise) => (maximise ? oriented : -oriented).ToString("0.####", CultureInfo.InvariantCulture);

    private static double Median(List<double> values) => Quantile(values, 0.5);

    /// <summary>The q-quantile with linear interpolation between order statistics (NumPy's default).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0)
        {
            throw new ArgumentException("No values.", nameof(values));
        }

        var sorted = values.Order().ToArray();
        var position = q * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + ((position - low) * (sorted[high] - sorted[low]));
    }
}
