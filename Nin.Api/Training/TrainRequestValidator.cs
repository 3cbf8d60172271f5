using Nin.Api.Datasets;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;

namespace Nin.Api.Training;

/// <summary>
/// Checks a <see cref="TrainRequest"/> field by field and fills in its recipe preset's values (<c>d2l</c> for the
/// built-in datasets, <c>robust</c> for uploaded ones) wherever the request gives none. Whether a worker can run it
/// (its device, the memory a step needs) is <see cref="WorkerAdmission"/>'s question, asked of the workers, not of the
/// process that received the request.
/// </summary>
public sealed class TrainRequestValidator(DatasetCatalog datasets)
{
    public const int MaxEpochs = 1000;
    public const int MaxBatchSize = 8192;

    // The ranges below are also the OpenAPI schema's (OpenApi/RulesSchemaFilter): one definition for both.
    public const double MaxLearningRate = 10;
    public const double MaxMomentum = 1; // exclusive
    public const double MaxWeightDecay = 1;
    public const double MaxShift = 0.5;
    public const double MaxLabelSmoothing = 0.5;

    public (TrainSettings? Settings, Dictionary<string, string[]> Errors) Validate(TrainRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        void Error(string field, string message) => errors[field] = [message];

        var dataset = request.Dataset ?? "fashion-mnist";
        if (!datasets.Exists(dataset))
        {
            Error("dataset", $"Unknown dataset '{dataset}'. Known: {string.Join(", ", datasets.Names())}.");
        }

        var uploaded = UploadedDatasets.IsUploadId(dataset);
        var preset = TrainingRecipes.Find(request.Recipe ?? (uploaded ? TrainingRecipes.RobustName : TrainingRecipes.D2lName));
        if (preset is null)
        {
            Error("recipe", $"Unknown recipe '{request.Recipe}'. Known: {string.Join(", ", TrainingRecipes.Names)}.");
            preset = TrainingRecipes.D2l;
        }

        var architecture = NetworkArchitectures.Find(request.Architecture ?? preset.Architecture);
        if (architecture is null)
        {
            // Refused, and no other architecture's limits stand in for it: the image size is checked against a known one only.
            Error("architecture", $"Unknown architecture '{request.Architecture}'. Known: {string.Join(", ", NetworkArchitectures.Names)}.");
        }

        var schedule = LearningRateSchedules.Parse(request.Schedule ?? LearningRateSchedules.Name(preset.Schedule));
        if (schedule is null)
        {
            Error("schedule", $"Unknown schedule '{request.Schedule}'. Known: {string.Join(", ", LearningRateSchedules.Names)}.");
        }

        var shift = request.Shift ?? preset.Shift;
        if (!double.IsFinite(shift) || shift < 0 || shift > MaxShift)
        {
            Error("shift", $"shift must be between 0 and 0.5 (a fraction of the image side); got {shift}.");
        }

        // Flipped digits are other digits (or none): the robust preset leaves MNIST unflipped.
        var flip = request.Flip ?? (preset.Flip && !dataset.Equals("mnist", StringComparison.OrdinalIgnoreCase));
        var labelSmoothing = request.LabelSmoothing ?? preset.LabelSmoothing;
        if (!double.IsFinite(labelSmoothing) || labelSmoothing < 0 || labelSmoothing > MaxLabelSmoothing)
        {
            Error("labelSmoothing", $"labelSmoothing must be between 0 and 0.5; got {labelSmoothing}.");
        }

        var epochs = request.Epochs ?? preset.Epochs;
        if (epochs is < 1 or > MaxEpochs)
        {
            Error("epochs", $"epochs must be between 1 and {MaxEpochs}; got {epochs}.");
        }

        // Uploaded sets are stored at 8–64 px: the network's smallest input is the natural default there.
        var imageSize = request.ImageSize ?? (uploaded ? architecture?.MinInputSize ?? 0 : 224);
        if (architecture is not null && (imageSize < architecture.MinInputSize || imageSize > architecture.MaxInputSize))
        {
            Error("imageSize", $"imageSize must be between {architecture.MinInputSize} (the smallest input that survives the {architecture.Name} network's max-pools) and {architecture.MaxInputSize}; got {imageSize}.");
        }

        // "auto": the worker's own Torch:Device. Whether a worker has the device is admission's question.
        var device = request.Device?.Trim().ToLowerInvariant() ?? "auto";
        if (!TorchRuntime.IsDeviceName(device))
        {
            Error("device", $"Unknown device '{request.Device}'. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.");
        }

        var batchSize = request.BatchSize ?? preset.BatchSize;
        if (batchSize is < 1 or > MaxBatchSize)
        {
            Error("batchSize", $"batchSize must be between 1 and {MaxBatchSize}; got {batchSize}.");
        }

        var lr = request.LearningRate ?? preset.LearningRate;
        if (!double.IsFinite(lr) || lr <= 0 || lr > MaxLearningRate)
        {
            Error("learningRate", $"learningRate must be a number greater than 0 and at most 10; got {lr}.");
        }

        var momentum = request.Momentum ?? preset.Momentum;
        if (!double.IsFinite(momentum) || momentum < 0 || momentum >= MaxMomentum)
        {
            Error("momentum", $"momentum must be at least 0 and below 1; got {momentum}.");
        }

        var weightDecay = request.WeightDecay ?? preset.WeightDecay;
        if (!double.IsFinite(weightDecay) || weightDecay < 0 || weightDecay > MaxWeightDecay)
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
            Error("modelName", $"modelName '{modelName}' is not valid: {ModelStore.NameRule}.");
        }

        if (errors.Count > 0)
        {
            return (null, errors);
        }

        return (new TrainSettings(dataset, epochs, batchSize, lr, momentum, weightDecay, imageSize, request.Seed ?? 0, device, modelName,
            request.MaxTrainImages, request.MaxTestImages, request.Activate ?? false,
            preset.Name, architecture!.Name, LearningRateSchedules.Name(schedule!.Value), shift, flip, labelSmoothing), errors);
    }
}

/// <summary>
/// Memory free now for a training run on a device of this process, or null where it cannot be known: on CUDA, TorchSharp
/// 0.107 has no free-memory query (its <c>torch.cuda</c> exposes none), so the device's limit shows as an out-of-memory
/// failure of the job. Workers publish it (<see cref="LocalWorker"/>) and check it again when a job starts.
/// </summary>
public class TrainingMemoryProbe
{
    public virtual long? AvailableBytes(string device) =>
        device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase) ? TrainingMemory.AvailableHostBytes() : null;
}
