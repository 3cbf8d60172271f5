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

    /// <summary>
    /// How many more attempts a run gets after an attempt lost PostgreSQL (the shared job records); each resumes from the
    /// last epoch checkpoint. Any other failure ends the job Failed at once. When they run out, Hangfire marks the job
    /// Failed and so does its record. Default 10.
    /// </summary>
    public int StorageRetries { get; set; } = 10;

    /// <summary>
    /// Seconds before each of those attempts (the last value repeats). Empty: <see cref="DefaultStorageRetryDelays"/>,
    /// 5, 10, 20, 30, then 60 (about 7 minutes for 10 retries). Not given a default here: configuration binding appends to
    /// an array's existing items, so a configured list would otherwise follow the default instead of replacing it.
    /// </summary>
    public int[]? StorageRetryDelays { get; set; }

    public static IReadOnlyList<int> DefaultStorageRetryDelays { get; } = [5, 10, 20, 30, 60];

    /// <summary>The delay before retry <paramref name="retry"/> (1-based).</summary>
    public int RetryDelay(int retry)
    {
        IReadOnlyList<int> delays = StorageRetryDelays is { Length: > 0 } configured ? configured : DefaultStorageRetryDelays;
        return Math.Max(0, delays[Math.Min(retry, delays.Count) - 1]);
    }

    /// <summary>How many of the newest jobs the hub's SubscribeAll answers with (queued and running ones come besides).</summary>
    public int HubRecentJobs { get; set; } = 50;
}
