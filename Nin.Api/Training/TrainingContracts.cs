using System.Text.Json.Serialization;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// A request to train a network. Every field is optional: <c>recipe</c> picks a preset (<c>d2l</c> for the built-in
/// datasets, <c>robust</c> for uploaded ones) and any field given explicitly overrides the preset's value.
/// </summary>
public sealed record TrainRequest
{
    /// <summary>Dataset to train on: <c>fashion-mnist</c>, <c>mnist</c> or an uploaded dataset's id (see GET /datasets).</summary>
    public string? Dataset { get; init; }

    /// <summary>Preset: <c>d2l</c> (the book's recipe; default for built-in datasets) or <c>robust</c> (default for uploaded datasets).</summary>
    public string? Recipe { get; init; }

    /// <summary>Network: <c>nin</c> (d2l's NiN) or <c>nin-bn</c> (BatchNorm after each convolution). Default: the preset's.</summary>
    public string? Architecture { get; init; }

    /// <summary>Passes over the training set (1–1000; d2l 10, robust 30).</summary>
    public int? Epochs { get; init; }

    /// <summary>Images per SGD step (d2l 128, robust 32).</summary>
    public int? BatchSize { get; init; }

    /// <summary>SGD learning rate, or the schedule's peak (default 0.1).</summary>
    public double? LearningRate { get; init; }

    /// <summary>Learning-rate schedule: <c>constant</c> (d2l), <c>one-cycle</c> (robust) or <c>cosine</c> (with warm-up).</summary>
    public string? Schedule { get; init; }

    /// <summary>SGD momentum, 0 ≤ m &lt; 1 (d2l 0, robust 0.9).</summary>
    public double? Momentum { get; init; }

    /// <summary>L2 weight decay, 0 ≤ wd ≤ 1 (d2l 0, robust 0.0001).</summary>
    public double? WeightDecay { get; init; }

    /// <summary>Augmentation: random shifts of training images by up to this fraction of their side, 0–0.5 (d2l 0, robust 0.1).</summary>
    public double? Shift { get; init; }

    /// <summary>Augmentation: random horizontal flips (d2l false, robust true except for mnist; wrong for digits).</summary>
    public bool? Flip { get; init; }

    /// <summary>Label smoothing of the loss, 0 ≤ s ≤ 0.5 (default 0).</summary>
    public double? LabelSmoothing { get; init; }

    /// <summary>Side of the square network input in pixels, 67–1024 (default 224 for built-in datasets, 67 for uploaded ones).</summary>
    public int? ImageSize { get; init; }

    /// <summary>Seed for initialisation, shuffling and dropout (default 0).</summary>
    public long? Seed { get; init; }

    /// <summary><c>auto</c> (CUDA when present), <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string? Device { get; init; }

    /// <summary>Name the resulting model is stored under (default: the dataset's name): 1–64 of a-z, 0-9, '.', '_', '-', not <c>active.json</c> or <c>*.tmp</c>.</summary>
    public string? ModelName { get; init; }

    /// <summary>Train on only the first N training images (default: all).</summary>
    public int? MaxTrainImages { get; init; }

    /// <summary>Evaluate on only the first N test images (default: all).</summary>
    public int? MaxTestImages { get; init; }

    /// <summary>Serve the result as soon as it is stored (default: only when no model is active).</summary>
    public bool? Activate { get; init; }
}

/// <summary>
/// A request with every default filled in: what the job actually runs. <c>SweepId</c> and <c>Trial</c> name the sweep
/// (POST /sweeps) and the trial a job runs for; null for a job queued by POST /train.
/// </summary>
public sealed record TrainSettings(
    string Dataset,
    int Epochs,
    int BatchSize,
    double LearningRate,
    double Momentum,
    double WeightDecay,
    int ImageSize,
    long Seed,
    string Device,
    string ModelName,
    int? MaxTrainImages,
    int? MaxTestImages,
    bool Activate,
    string Recipe = "d2l",
    string Architecture = "nin",
    string Schedule = "constant",
    double Shift = 0,
    bool Flip = false,
    double LabelSmoothing = 0,
    string? SweepId = null,
    int? Trial = null);

[JsonConverter(typeof(JsonStringEnumConverter<JobStatus>))]
public enum JobStatus
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,

    /// <summary>A sweep's trial ended early by its sweep's early-stopping rule (<c>stopReason</c> says why); it stores no model.</summary>
    Stopped,
}

/// <summary>Where the current epoch stands.</summary>
public sealed record JobProgress(int Epoch, int Batch, int Batches);

/// <summary>
/// Everything known about a training job; what GET /train/{jobId} and the hub's JobUpdated carry.
/// <c>ResumedAfterEpoch</c> is set when a restart interrupted the job and it continued from that epoch's checkpoint.
/// <c>Warnings</c> says when the run did not learn (then its model is not activated automatically), and when the
/// promotion gate kept its model from being activated as asked (<c>not activated: …</c>, with the gate's reasons).
/// <c>Worker</c> names the process (host:pid:id) that runs or ran the job; with several workers it changes when
/// another one took the job over after its worker died.
/// <c>Revision</c> grows by one with every change of the record (status, epochs, model; not batch progress): of two
/// snapshots or events of one job, the one with the higher revision is the newer, whatever order they arrived in.
/// <c>HangfireJobId</c> is the job's id in Hangfire's dashboard (<c>/hangfire</c>).
/// <c>StopReason</c>: why a sweep's trial was stopped early (status <c>Stopped</c>): the rule and its figures.
/// </summary>
public sealed record JobSnapshot(
    string JobId,
    JobStatus Status,
    TrainSettings Request,
    string? Device,
    JobProgress Progress,
    IReadOnlyList<EpochMetrics> Epochs,
    string? ModelName,
    int? ModelVersion,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int? ResumedAfterEpoch = null,
    IReadOnlyList<string>? Warnings = null,
    string? Worker = null,
    long Revision = 0,
    string? HangfireJobId = null,
    string? StopReason = null)
{
    /// <summary>
    /// A new queued job with a fresh 12-character id, revision 1. Its creation time is kept to the microsecond, the
    /// precision PostgreSQL stores, so both stores order and page it the same way.
    /// </summary>
    public static JobSnapshot New(TrainSettings settings)
    {
        var now = DateTimeOffset.UtcNow;
        var created = new DateTimeOffset(now.Ticks - (now.Ticks % 10), TimeSpan.Zero);
        return new(Guid.NewGuid().ToString("N")[..12], JobStatus.Queued, settings, null, new JobProgress(0, 0, 0), [], null, null, null, created, null, null, Warnings: [], Revision: 1);
    }

    /// <summary>Succeeded, Failed, Cancelled or Stopped: final, nothing changes it but a requeue in Hangfire.</summary>
    [JsonIgnore]
    public bool IsFinished => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled or JobStatus.Stopped;
}

/// <summary>202 body of POST /train.</summary>
public sealed record TrainAccepted(string JobId, JobStatus Status);

/// <summary>Hub event: a few times a second while a job trains. <c>Revision</c>: the job's revision it belongs to (see <see cref="JobSnapshot"/>).</summary>
public sealed record BatchProgressEvent(string JobId, int Epoch, int Batch, int Batches, double Loss, long Revision = 0);

/// <summary>Hub event: after every epoch's test pass; <c>Revision</c> is that of the snapshot that added the epoch.</summary>
public sealed record EpochCompletedEvent(string JobId, int Epoch, int Epochs, double TrainLoss, double TrainAccuracy, double TestAccuracy, double ExamplesPerSecond, double Seconds, long Revision = 0);

/// <summary>Hub event: the job ended; <c>Revision</c> is that of the snapshot that recorded the end.</summary>
public sealed record JobFinishedEvent(string JobId, JobStatus Status, string? ModelName, int? ModelVersion, string? Error, IReadOnlyList<string>? Warnings = null, long Revision = 0, string? StopReason = null);

/// <summary>
/// A job record that could not be read (a truncated or garbled <c>job.json</c>): listed with the reason, never dropped
/// silently and never deleted automatically.
/// </summary>
public sealed record DamagedJobRecord(string JobId, string Reason);

/// <summary>A recipe preset as GET /train/recipes lists it: the values it gives every field it sets.</summary>
public sealed record RecipeInfo(
    string Name,
    string Description,
    string DefaultFor,
    string Architecture,
    int Epochs,
    int BatchSize,
    double LearningRate,
    string Schedule,
    double Momentum,
    double WeightDecay,
    double Shift,
    bool Flip,
    double LabelSmoothing);

/// <summary>A network architecture: its smallest input and its parameters for one channel and ten classes.</summary>
public sealed record ArchitectureInfo(string Name, string Description, int MinInputSize, long ParameterCount);

/// <summary>200 body of GET /train/recipes.</summary>
public sealed record RecipesResponse(IReadOnlyList<RecipeInfo> Recipes, IReadOnlyList<ArchitectureInfo> Architectures);
