using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nin.Model.Checkpoints;

/// <summary>
/// Everything needed to serve a checkpoint the way it was trained, saved as <c>model.json</c> beside the weights.
/// </summary>
public sealed record ModelMetadata
{
    public const int CurrentFormat = 1;

    public int Format { get; init; } = CurrentFormat;

    /// <summary>
    /// The network's name in <see cref="Network.NetworkArchitectures"/> (<c>nin</c>, <c>nin-bn</c>); files written
    /// before the registry say <c>nin-d2l</c>, read as <c>nin</c>.
    /// </summary>
    public string Architecture { get; init; } = Network.NetworkArchitectures.NinName;

    public required string Name { get; init; }

    public int Version { get; init; }

    public required IReadOnlyList<string> ClassNames { get; init; }

    public int InputChannels { get; init; } = 1;

    /// <summary>Side of the square input the network was trained on (d2l: 224).</summary>
    public int ImageSize { get; init; } = 224;

    public required PreprocessingInfo Preprocessing { get; init; }

    public TrainingRecipe? Recipe { get; init; }

    public ModelMetrics? Metrics { get; init; }

    /// <summary>Set when the run did not learn (see <c>TrainingOutcome</c>); such a model is never activated automatically.</summary>
    public IReadOnlyList<string>? Warnings { get; init; }

    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;

    public string TorchSharpVersion { get; init; } = "";

    public string TorchBackend { get; init; } = "";

    /// <summary>The device the weights were trained on.</summary>
    public string? TrainedOn { get; init; }

    /// <summary>Set when the weights were imported from a file rather than trained here.</summary>
    public ImportedWeights? ImportedFrom { get; init; }

    public long ParameterCount { get; init; }

    public string WeightsFile { get; init; } = "weights.bin";

    public string WeightsSha256 { get; init; } = "";

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary><see cref="JsonOptions"/> on one line (history files, one entry a line).</summary>
    public static JsonSerializerOptions CompactJsonOptions { get; } = new(JsonOptions) { WriteIndented = false };
}

/// <summary>
/// How an image becomes the network's input: converted to <see cref="Channels"/> at the dataset's
/// native size, scaled to [0, 1] (x / 255, no normalisation), then resized bilinearly to the model's image size.
/// </summary>
public sealed record PreprocessingInfo
{
    public int Channels { get; init; } = 1;

    public int NativeWidth { get; init; } = 28;

    public int NativeHeight { get; init; } = 28;

    public string Scale { get; init; } = "x/255";

    public string Normalization { get; init; } = "none";

    public string Resize { get; init; } = "bilinear";

    /// <summary>
    /// What the training pictures looked like: <c>light-on-dark</c> (the MNIST family, objects bright on black),
    /// <c>dark-on-light</c> or <c>none</c> (no consistent background), measured from the borders of an uploaded
    /// set. Only a <c>light-on-dark</c> model inverts light-bordered pictures under <c>invert=auto</c>.
    /// </summary>
    public string Foreground { get; init; } = Data.Foregrounds.LightOnDark;
}

/// <summary>Where imported weights came from: the file's format (<c>pytorch</c> or <c>safetensors</c>), name and SHA-256.</summary>
public sealed record ImportedWeights(string Format, string? FileName, string Sha256);

/// <summary>How the weights were trained.</summary>
public sealed record TrainingRecipe
{
    public required string Dataset { get; init; }

    /// <summary>The preset the recipe started from (<c>d2l</c>, <c>robust</c>); absent in older files.</summary>
    public string? Preset { get; init; }

    public int Epochs { get; init; }

    public int BatchSize { get; init; }

    /// <summary>The constant rate, or the schedule's peak.</summary>
    public double LearningRate { get; init; }

    /// <summary><c>constant</c> (d2l), <c>one-cycle</c> or <c>cosine</c>.</summary>
    public string Schedule { get; init; } = "constant";

    /// <summary>Random shift of training images, as a fraction of the side (0: none).</summary>
    public double Shift { get; init; }

    /// <summary>Random horizontal flips of training images.</summary>
    public bool Flip { get; init; }

    public double LabelSmoothing { get; init; }

    public double Momentum { get; init; }

    public double WeightDecay { get; init; }

    public long Seed { get; init; }

    public string Optimizer { get; init; } = "sgd";

    public string Loss { get; init; } = "cross-entropy";

    public string Init { get; init; } = "xavier-uniform";

    public int TrainImages { get; init; }

    public int TestImages { get; init; }

    /// <summary>
    /// Set when these weights continued another model's training (epochs 1..<c>ContinuedFrom.Epochs</c> were
    /// that model's recipe; this recipe's learning rate applies to the epochs after it).
    /// </summary>
    public ContinuedFrom? ContinuedFrom { get; init; }
}

/// <summary>The model a run started from: its identity, the hash of its weights and its own recipe.</summary>
public sealed record ContinuedFrom
{
    public required string Name { get; init; }

    public int Version { get; init; }

    public string WeightsSha256 { get; init; } = "";

    public int Epochs { get; init; }

    /// <summary><c>fresh</c> when the optimizer state (momentum) was not carried over.</summary>
    public string OptimizerState { get; init; } = "fresh";

    public required TrainingRecipe Recipe { get; init; }
}

/// <summary>One epoch's figures, as d2l's train_ch6 reports them.</summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double TestAccuracy, double ExamplesPerSecond, double Seconds);

/// <summary>The figures a finished training run ends with.</summary>
public sealed record ModelMetrics
{
    public double TestAccuracy { get; init; }

    public double TrainAccuracy { get; init; }

    public double TrainLoss { get; init; }

    public double ExamplesPerSecond { get; init; }

    public double Seconds { get; init; }

    public IReadOnlyList<EpochMetrics> Epochs { get; init; } = [];
}
