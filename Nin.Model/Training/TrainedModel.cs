using Nin.Model.Checkpoints;
using Nin.Model.Data;

namespace Nin.Model.Training;

/// <summary>The metadata a finished training run is stored with, wherever it was trained from.</summary>
public static class TrainedModel
{
    public static ModelMetadata Describe(string name, DatasetSplit data, TrainingOptions options, IReadOnlyList<EpochMetrics> epochs, string device) => new()
    {
        Name = name,
        ClassNames = data.Train.ClassNames,
        InputChannels = data.Train.Channels,
        ImageSize = options.ImageSize,
        Preprocessing = new PreprocessingInfo
        {
            Channels = data.Train.Channels,
            NativeWidth = data.Train.Width,
            NativeHeight = data.Train.Height,
            Foreground = data.Train.Foreground,
        },
        Recipe = new TrainingRecipe
        {
            Dataset = data.Train.Name,
            Preset = options.Recipe,
            Epochs = options.Epochs,
            BatchSize = options.BatchSize,
            LearningRate = options.LearningRate,
            Schedule = LearningRateSchedules.Name(options.Schedule),
            Momentum = options.Momentum,
            WeightDecay = options.WeightDecay,
            Shift = options.Shift,
            Flip = options.Flip,
            LabelSmoothing = options.LabelSmoothing,
            Seed = options.Seed,
            TrainImages = data.Train.Count,
            TestImages = data.Test.Count,
        },
        Metrics = Summarise(epochs),
        Warnings = epochs.Count == 0 ? null : TrainingOutcome.Warnings(epochs, data.Train.ClassNames.Count) is { Count: > 0 } w ? w : null,
        TrainedOn = device,
    };

    /// <summary>The last epoch's figures, with throughput weighted by each epoch's time.</summary>
    public static ModelMetrics Summarise(IReadOnlyList<EpochMetrics> epochs)
    {
        var last = epochs[^1];
        return new ModelMetrics
        {
            TestAccuracy = last.TestAccuracy,
            TrainAccuracy = last.TrainAccuracy,
            TrainLoss = last.TrainLoss,
            ExamplesPerSecond = epochs.Sum(h => h.ExamplesPerSecond * h.Seconds) / Math.Max(1e-9, epochs.Sum(h => h.Seconds)),
            Seconds = epochs.Sum(h => h.Seconds),
            Epochs = [.. epochs],
        };
    }
}
