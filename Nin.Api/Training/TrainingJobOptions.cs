namespace Nin.Api.Training;

/// <summary>How job records are kept and shown. Bound from the <c>Training</c> section.</summary>
public sealed class TrainingJobOptions
{
    public const string SectionName = "Training";

    /// <summary>
    /// Finished records (Succeeded, Failed, Cancelled) are deleted this long after they finished, with their job folders;
    /// the model versions they stored stay. Zero or negative keeps them for ever. Default 30 days.
    /// </summary>
    public TimeSpan FinishedJobRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often the retention sweep runs (also once at start).</summary>
    public TimeSpan RetentionSweepInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How many of the newest jobs the hub's SubscribeAll answers with (queued and running ones come besides).</summary>
    public int HubRecentJobs { get; set; } = 50;
}
