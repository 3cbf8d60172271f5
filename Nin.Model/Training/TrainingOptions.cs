namespace Nin.Model.Training;

/// <summary>The training recipe. Defaults are d2l's for NiN on Fashion-MNIST (see <see cref="TrainingRecipes.D2l"/>).</summary>
public sealed record TrainingOptions
{
    public int Epochs { get; init; } = 10;

    public int BatchSize { get; init; } = 128;

    /// <summary>The learning rate (constant), or the schedule's peak (one-cycle, cosine).</summary>
    public double LearningRate { get; init; } = 0.1;

    public double Momentum { get; init; }

    public double WeightDecay { get; init; }

    public int ImageSize { get; init; } = 224;

    public long Seed { get; init; }

    /// <summary>Batch size for the test pass (no gradients, so it can be larger).</summary>
    public int EvalBatchSize { get; init; } = 256;

    /// <summary>How the learning rate moves over the run (d2l: constant).</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;

    /// <summary>Random shifts of each training image by up to this fraction of its side (0: none), edges repeated.</summary>
    public double Shift { get; init; }

    /// <summary>Mirror half of the training images left to right (wrong for digits and text).</summary>
    public bool Flip { get; init; }

    /// <summary>Label smoothing of the cross-entropy (0: none).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>The preset these options started from (<c>d2l</c>, <c>robust</c>), for the record.</summary>
    public string Recipe { get; init; } = TrainingRecipes.D2lName;
}

/// <summary>Where a run stands, handed to observers a few times a second.</summary>
public sealed record BatchProgress(int Epoch, int Batch, int Batches, double Loss);

/// <summary>Receives a run's progress; called on the training thread, so keep it quick.</summary>
public interface ITrainingObserver
{
    void OnBatch(BatchProgress progress);

    void OnEpoch(Checkpoints.EpochMetrics metrics);
}

/// <summary>An epoch that can be continued from: the epoch just finished and the figures so far.</summary>
public sealed record ResumePoint(int CompletedEpochs, IReadOnlyList<Checkpoints.EpochMetrics> History, string WeightsPath, string? OptimizerPath);
