using Nin.Api.Datasets;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;

namespace Nin.Api.Models;

/// <summary>
/// Evaluates a stored model version on its dataset's test split (as many test images as it was trained with) and
/// stores the result beside it. The network is a fresh instance loaded from the version's checkpoint, never the one
/// being served or trained; the forward passes run on a thread of their own, on the device <c>Torch:Device</c> names.
/// </summary>
public sealed class ModelEvaluator(ModelStore models, DatasetCatalog datasets)
{
    /// <summary>Loads the version's test split; null when the version is unknown.</summary>
    public async Task<ModelEvaluation?> EvaluateAsync(string name, int version, CancellationToken cancellationToken)
    {
        if (models.Find(name, version) is not { } info)
        {
            return null;
        }

        var test = await LoadTestSetAsync(info.Metadata, cancellationToken);
        return await EvaluateAsync(info, test, cancellationToken);
    }

    /// <summary>Evaluates <paramref name="info"/> on <paramref name="test"/> (already loaded, as at the end of training) and stores the result beside it.</summary>
    public async Task<ModelEvaluation> EvaluateAsync(ModelVersionInfo info, ImageDataset test, CancellationToken cancellationToken)
    {
        var (evaluation, predictions) = await MeasureAsync(info, test, cancellationToken);
        evaluation = evaluation with { Classes = info.Metadata.ClassNames, Dataset = info.Metadata.Recipe?.Dataset ?? test.Name };
        EvaluationFiles.Save(info.Directory, evaluation, predictions);
        return evaluation;
    }

    /// <summary>
    /// Runs <paramref name="info"/> over <paramref name="test"/> and returns what it predicted, storing nothing (the
    /// promotion gate measures the active version on a candidate's split this way). The predictions are the version's
    /// own class indices; the split's labels are the test set's.
    /// </summary>
    public Task<(ModelEvaluation Evaluation, TestPredictions Predictions)> MeasureAsync(ModelVersionInfo info, ImageDataset test, CancellationToken cancellationToken) =>
        TorchRuntime.RunOnOwnThread($"nin-evaluate-{info.Name}-{info.Version}", () =>
        {
            var device = Training.WorkerDevices.Resolve("auto"); // this process's Torch:Device
            var (network, metadata) = Checkpoint.Load(info.Directory, device, expectedClasses: test.ClassNames.Count);
            using (network)
            {
                var batch = TrainingMemory.EvaluationBatchSize(NetworkArchitectures.Get(network.Architecture), metadata.Recipe?.BatchSize is > 0 and var b ? b : 128, metadata.ImageSize);
                return Evaluator.Run(network, test, metadata.ImageSize, batch, device, cancellationToken);
            }
        });

    /// <summary>
    /// The test split a version was trained against: its recorded dataset, cut to its recorded test count (or to the
    /// first <paramref name="first"/> images, when fewer are needed).
    /// </summary>
    public async Task<ImageDataset> LoadTestSetAsync(ModelMetadata metadata, CancellationToken cancellationToken, int? first = null)
    {
        var dataset = metadata.Recipe?.Dataset;
        if (dataset is null || !datasets.Exists(dataset))
        {
            throw new EvaluationUnavailableException($"The dataset this version was trained on ('{dataset ?? "unrecorded"}') is not on this server.");
        }

        var testCount = metadata.Recipe!.TestImages > 0 ? metadata.Recipe.TestImages : (int?)null;
        if (first is { } n)
        {
            testCount = Math.Min(n, testCount ?? int.MaxValue);
        }

        var split = await datasets.LoadAsync(dataset, 0, testCount, cancellationToken);
        if (split.Test.ClassNames.Count != metadata.ClassNames.Count || split.Test.Channels != metadata.InputChannels)
        {
            throw new EvaluationUnavailableException(
                $"Dataset '{dataset}' has {split.Test.ClassNames.Count} classes and {split.Test.Channels} channel(s); the model has {metadata.ClassNames.Count} and {metadata.InputChannels}.");
        }

        return split.Test;
    }
}

/// <summary>A version cannot be evaluated here (its dataset is missing or does not fit it); the message says why.</summary>
public sealed class EvaluationUnavailableException(string message) : InvalidOperationException(message);
