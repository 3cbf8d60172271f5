using Nin.Api.Datasets;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;

namespace Nin.Api.Training;

/// <summary>Checks a <see cref="TrainRequest"/> field by field and fills in d2l's defaults.</summary>
public sealed class TrainRequestValidator(DatasetCatalog datasets)
{
    public const int MaxEpochs = 1000;
    public const int MaxBatchSize = 8192;

    public (TrainSettings? Settings, Dictionary<string, string[]> Errors) Validate(TrainRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        void Error(string field, string message) => errors[field] = [message];

        var dataset = request.Dataset ?? "fashion-mnist";
        if (!datasets.Exists(dataset))
        {
            Error("dataset", $"Unknown dataset '{dataset}'. Known: {string.Join(", ", datasets.Names())}.");
        }

        var epochs = request.Epochs ?? 10;
        if (epochs is < 1 or > MaxEpochs)
        {
            Error("epochs", $"epochs must be between 1 and {MaxEpochs}; got {epochs}.");
        }

        var imageSize = request.ImageSize ?? 224;
        if (imageSize < NinGeometry.MinimumImageSize || imageSize > NinGeometry.MaximumImageSize)
        {
            Error("imageSize", $"imageSize must be between {NinGeometry.MinimumImageSize} (the smallest input that survives the NiN's three max-pools) and {NinGeometry.MaximumImageSize}; got {imageSize}.");
        }

        var device = request.Device ?? "auto";
        var resolvedDevice = "cpu";
        if (!TorchRuntime.IsDeviceName(device))
        {
            Error("device", $"Unknown device '{device}'. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.");
        }
        else
        {
            try
            {
                resolvedDevice = TorchRuntime.ResolveDevice(device).ToString();
            }
            catch (ArgumentException ex)
            {
                Error("device", ex.Message);
            }
        }

        var batchSize = request.BatchSize ?? 128;
        if (batchSize is < 1 or > MaxBatchSize)
        {
            Error("batchSize", $"batchSize must be between 1 and {MaxBatchSize}; got {batchSize}.");
        }
        else if (!errors.ContainsKey("imageSize") && resolvedDevice == "cpu")
        {
            var need = TrainingMemory.EstimateBytes(batchSize, imageSize);
            var have = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            if (need > have * 0.8)
            {
                Error("batchSize", $"batchSize {batchSize} at {imageSize} px needs about {need / (1 << 20):N0} MiB for activations and gradients, more than this machine allows ({have / (1 << 20):N0} MiB); use a smaller batch or image size.");
            }
        }

        var lr = request.LearningRate ?? 0.1;
        if (!double.IsFinite(lr) || lr <= 0 || lr > 10)
        {
            Error("learningRate", $"learningRate must be a number greater than 0 and at most 10; got {lr}.");
        }

        var momentum = request.Momentum ?? 0;
        if (!double.IsFinite(momentum) || momentum < 0 || momentum >= 1)
        {
            Error("momentum", $"momentum must be at least 0 and below 1; got {momentum}.");
        }

        var weightDecay = request.WeightDecay ?? 0;
        if (!double.IsFinite(weightDecay) || weightDecay < 0 || weightDecay > 1)
        {
            Error("weightDecay", $"weightDecay must be between 0 and 1; got {weightDecay}.");
        }

        if (request.MaxTrainImages is < 1)
        {
            Error("maxTrainImages", $"maxTrainImages must be at least 1 when given; got {request.MaxTrainImages}.");
        }

        if (request.MaxTestImages is < 1)
        {
            Error("maxTestImages", $"maxTestImages must be at least 1 when given; got {request.MaxTestImages}.");
        }

        var modelName = request.ModelName ?? dataset.ToLowerInvariant();
        if (!ModelStore.IsValidName(modelName))
        {
            Error("modelName", $"modelName '{modelName}' is not valid: use 1–64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.");
        }

        if (errors.Count > 0)
        {
            return (null, errors);
        }

        return (new TrainSettings(dataset, epochs, batchSize, lr, momentum, weightDecay, imageSize, request.Seed ?? 0, device, modelName,
            request.MaxTrainImages, request.MaxTestImages, request.Activate ?? false), errors);
    }
}

/// <summary>A rough upper bound of the memory a training step needs, to refuse batches that cannot fit.</summary>
public static class TrainingMemory
{
    /// <summary>The architecture's own per-image figure (feature maps, gradients, working space) times the batch.</summary>
    public static long EstimateBytes(int batchSize, int imageSize, NetworkArchitecture? architecture = null, int inputChannels = 1, int classes = 10) =>
        batchSize * (architecture ?? NetworkArchitectures.Nin).BytesPerImage(imageSize, inputChannels, classes);
}
