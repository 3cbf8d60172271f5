using System.Text.Json;
using System.Text.Json.Serialization;
using Nin.Api.Training;

namespace Nin.Api.Sweeps;

/// <summary>
/// A request to search for a good recipe: trials of <see cref="Base"/> with the settings of <see cref="Space"/> varied,
/// each an ordinary training job. Every field but <see cref="Space"/> is optional.
/// </summary>
public sealed record SweepRequest
{
    /// <summary>The training request every trial starts from (dataset, recipe, epochs, model name, …); a trial's searched settings replace its fields. Its <c>activate</c> must be absent or false: the sweep activates only its best trial (see <c>activate</c>).</summary>
    public TrainRequest? Base { get; init; }

    /// <summary><c>grid</c> (every combination of the listed values; the default) or <c>random</c> (<c>maxTrials</c> seeded draws from lists and ranges).</summary>
    public string? Method { get; init; }

    /// <summary>The searched settings, by the training request's field names: <c>learningRate</c>, <c>batchSize</c>, <c>weightDecay</c>, <c>epochs</c>, <c>momentum</c>, <c>recipe</c>, <c>architecture</c>, <c>schedule</c>, <c>shift</c>, <c>flip</c>, <c>labelSmoothing</c>, <c>imageSize</c>, <c>seed</c>. Each is <c>{"values": [...]}</c> or, for random search of a number, <c>{"min": a, "max": b, "log": true|false}</c>.</summary>
    public Dictionary<string, SweepParameter>? Space { get; init; }

    /// <summary>The most trials to run (1–100). Grid: default the grid's size, which may not exceed it. Random: default 10.</summary>
    public int? MaxTrials { get; init; }

    /// <summary>What the sweep optimises, per epoch: <c>testAccuracy</c> (default) or <c>trainAccuracy</c> (maximised), or <c>trainLoss</c> (minimised).</summary>
    public string? Metric { get; init; }

    /// <summary>How unpromising trials are stopped (default: the median rule after one epoch, with two other trials to compare with).</summary>
    public EarlyStoppingRequest? EarlyStopping { get; init; }

    /// <summary>When every trial has ended, activate the best trial's version, through the promotion gate (default false).</summary>
    public bool? Activate { get; init; }

    /// <summary>Seed of random search's draws (default 0). Each trial's training seed is the base's unless <c>seed</c> is searched.</summary>
    public long? Seed { get; init; }
}

/// <summary>A searched setting: a list of values, or (random search, numbers) a range.</summary>
public sealed record SweepParameter
{
    /// <summary>The values to try (1–100), each of the setting's type.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<JsonElement>? Values { get; init; }

    /// <summary>Random search: the range's low end.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Min { get; init; }

    /// <summary>Random search: the range's high end.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Max { get; init; }

    /// <summary>Random search: draw log-uniformly (needs min &gt; 0); default false.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Log { get; init; }
}

/// <summary>The early-stopping rule of a sweep.</summary>
public sealed record EarlyStoppingRequest
{
    /// <summary><c>median</c> (default): stop a trial whose best value so far is worse than the median of the other trials' running averages at the same epoch. <c>asha</c>: asynchronous successive halving, only the top 1/<c>reductionFactor</c> at each rung go on. <c>none</c>.</summary>
    public string? Rule { get; init; }

    /// <summary>No trial is judged before this many epochs (ASHA: the first rung); 1–1000, default 1.</summary>
    public int? GraceEpochs { get; init; }

    /// <summary>How many other trials must have reached the same epoch before a trial is judged; 1–100, default 2.</summary>
    public int? MinTrials { get; init; }

    /// <summary>ASHA's η: rungs at grace·η^k epochs, the top 1/η go on; 2–10, default 3.</summary>
    public int? ReductionFactor { get; init; }
}

/// <summary>A sweep's early-stopping rule as it runs (defaults filled in).</summary>
public sealed record EarlyStoppingSettings(string Rule, int GraceEpochs, int MinTrials, int ReductionFactor);

[JsonConverter(typeof(JsonStringEnumConverter<SweepStatus>))]
public enum SweepStatus
{
    /// <summary>Trials are queued or running.</summary>
    Running,

    /// <summary>Every trial has ended and at least one stored a model: <c>best</c> names it.</summary>
    Succeeded,

    /// <summary>Every trial has ended and none stored a model.</summary>
    Failed,

    /// <summary>Cancelled by DELETE /sweeps/{id}: its unfinished trials were cancelled.</summary>
    Cancelled,
}

/// <summary>One trial: its searched settings, and how its job stands.</summary>
public sealed record SweepTrial(
    int Trial,
    string? JobId,
    IReadOnlyDictionary<string, JsonElement> Parameters,
    JobStatus? Status,
    int Epochs,
    int EpochsCompleted,
    double? Metric,
    double? BestMetric,
    string? StopReason,
    string? Error,
    string? ModelName,
    int? ModelVersion);

/// <summary>The sweep's best trial: the highest (lowest, for a loss) final metric among trials that stored a model.</summary>
public sealed record SweepBest(int Trial, string JobId, double Metric, string ModelName, int ModelVersion, IReadOnlyDictionary<string, JsonElement> Parameters);

/// <summary>What became of <c>activate</c>: whether the best trial's version was activated and, if not, why (the promotion gate's reasons).</summary>
public sealed record SweepPromotion(bool Activated, IReadOnlyList<string> Reasons);

/// <summary>
/// A sweep as GET /sweeps/{id} shows it: its settings, every trial with its job's status and metric, the best trial once
/// every trial has ended, and what <c>activate</c> did. <c>EpochsRun</c>: epochs trained across the trials so far;
/// <c>EpochsFull</c>: what running every trial to its end would take, the cost early stopping saves from.
/// </summary>
public sealed record SweepSnapshot(
    string SweepId,
    SweepStatus Status,
    string Method,
    string Metric,
    bool Maximise,
    EarlyStoppingSettings EarlyStopping,
    int MaxTrials,
    bool Activate,
    TrainRequest Base,
    IReadOnlyDictionary<string, SweepParameter> Space,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt,
    IReadOnlyList<SweepTrial> Trials,
    SweepBest? Best,
    SweepPromotion? Promotion,
    int EpochsRun,
    int EpochsFull);
