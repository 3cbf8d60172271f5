using Nin.Api.Training;
using Nin.Model.Experiments;

namespace Nin.Api.Sweeps;

/// <summary>
/// Decides, where a trial runs and after each of its epochs, whether its sweep's early-stopping rule stops it: its curve
/// against the other trials' curves, read from their job records (shared by every worker), so the verdict does not depend
/// on which worker runs which trial.
/// </summary>
public sealed class TrialJudge(SweepStore sweeps, ITrainingJobStore jobs)
{
    /// <summary>The verdict for <paramref name="trial"/> after its latest recorded epoch, or null to go on (and for a job that is not a trial).</summary>
    public StopVerdict? Judge(JobSnapshot trial)
    {
        if (trial.Request.SweepId is not { } sweepId || sweeps.Get(sweepId) is not { } sweep || sweep.EarlyStopping.Rule == "none")
        {
            return null;
        }

        var others = new List<TrialCurve>();
        foreach (var other in sweep.Trials)
        {
            if (other.JobId is not { } id || id == trial.JobId)
            {
                continue;
            }

            if (jobs.TrialJob(id) is { } job)
            {
                others.Add(Curve(other.Trial, job, sweep.Metric));
            }
        }

        return EarlyStopping.Judge(SweepMetrics.Policy(sweep.EarlyStopping), Curve(trial.Request.Trial ?? 0, trial, sweep.Metric), others,
            trial.Request.Epochs, sweep.Metric, SweepMetrics.Maximise(sweep.Metric));
    }

    public static TrialCurve Curve(int trial, JobSnapshot job, string metric) =>
        new(trial, [.. job.Epochs.OrderBy(e => e.Epoch).Select(e => SweepMetrics.Oriented(e, metric))]);
}

/// <summary>A trial's sweep rule stopped it after an epoch; the message is the rule's reason with its figures.</summary>
public sealed class TrialStoppedException(string reason) : Exception(reason)
{
    public string Reason { get; } = reason;
}
