using System.Text.Json.Serialization;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// A request to train the NiN. Every field is optional; the defaults are d2l's recipe for Fashion-MNIST.
/// </summary>
public sealed record TrainRequest
{
    /// <summary>Dataset to train on: <c>fashion-mnist</c>, <c>mnist</c> (see GET /datasets).</summary>
    public string? Dataset { get; init; }

    /// <summary>Passes over the training set (1–1000, default 10).</summary>
    public int? Epochs { get; init; }

    /// <summary>Images per SGD step (default 128).</summary>
    public int? BatchSize { get; init; }

    /// <summary>SGD learning rate (default 0.1).</summary>
    public double? LearningRate { get; init; }

    /// <summary>SGD momentum, 0 ≤ m &lt; 1 (default 0).</summary>
    public double? Momentum { get; init; }

    /// <summary>L2 weight decay, 0 ≤ wd ≤ 1 (default 0).</summary>
    public double? WeightDecay { get; init; }

    /// <summary>Side of the square network input in pixels, 67–1024 (default 224).</summary>
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

/// <summary>A request with every default filled in: what the job actually runs.</summary>
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
    bool Activate);

[JsonConverter(typeof(JsonStringEnumConverter<JobStatus>))]
public enum JobStatus
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>Where the current epoch stands.</summary>
public sealed record JobProgress(int Epoch, int Batch, int Batches);

/// <summary>
/// Everything known about a training job; what GET /train/{jobId} and the hub's JobUpdated carry.
/// <c>ResumedAfterEpoch</c> is set when a restart interrupted the job and it continued from that epoch's checkpoint.
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
    int? ResumedAfterEpoch = null);

/// <summary>202 body of POST /train.</summary>
public sealed record TrainAccepted(string JobId, JobStatus Status);

/// <summary>Hub event: a few times a second while a job trains.</summary>
public sealed record BatchProgressEvent(string JobId, int Epoch, int Batch, int Batches, double Loss);

/// <summary>Hub event: after every epoch's test pass.</summary>
public sealed record EpochCompletedEvent(string JobId, int Epoch, int Epochs, double TrainLoss, double TrainAccuracy, double TestAccuracy, double ExamplesPerSecond, double Seconds);

/// <summary>Hub event: the job ended.</summary>
public sealed record JobFinishedEvent(string JobId, JobStatus Status, string? ModelName, int? ModelVersion, string? Error);
