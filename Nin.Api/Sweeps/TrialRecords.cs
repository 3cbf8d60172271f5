using Nin.Api.Training;

namespace Nin.Api.Sweeps;

/// <summary>How the sweep code reads its trials' job records.</summary>
public static class TrialRecords
{
    /// <summary>
    /// A trial's job record, or null when it has none yet, it is gone, or it cannot be read. A damaged record cannot run
    /// again either, so it counts as ended and is left out of comparisons; GET /train/damaged lists it.
    /// </summary>
    public static JobSnapshot? TrialJob(this ITrainingJobStore jobs, string? jobId)
    {
        try
        {
            return jobId is null ? null : jobs.Get(jobId);
        }
        catch (DamagedJobException)
        {
            return null;
        }
    }
}
