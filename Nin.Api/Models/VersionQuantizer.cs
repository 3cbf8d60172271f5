using Microsoft.Extensions.Options;
using Nin.Api.Datasets;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Onnx;
using Nin.Model.Runtime;

namespace Nin.Api.Models;

/// <summary>
/// Makes a version's int8 model (<see cref="Int8Cache.Prepare"/>) with the service's settings: calibrated on a sample
/// of the version's own training images, measured against fp32 on its test split. Training does it for each new
/// version before it can be activated; <c>POST .../quantize</c> does it for older, imported or re-trained ones.
/// </summary>
public sealed partial class VersionQuantizer(ModelStore models, DatasetCatalog datasets, IOptions<ServingOptions> serving, IServiceProvider services, ILogger<VersionQuantizer> logger)
{
    /// <summary>Quantizes with a dataset already loaded (at the end of training); a failure is logged, and the version serves fp32.</summary>
    public async Task<Int8Record?> TryQuantizeAsync(ModelVersionInfo version, DatasetSplit data, CancellationToken cancellationToken)
    {
        try
        {
            return await QuantizeAsync(version, data, cancellationToken);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Cancelled included: the version is stored either way, and POST .../quantize can do it later.
            LogNotQuantized(logger, version.Name, version.Version, ex.Message);
            return null;
        }
    }

    /// <summary>Loads the version's dataset (as many images as it was trained and tested with) and quantizes it; null for an unknown version.</summary>
    public async Task<Int8Record?> QuantizeAsync(string name, int version, CancellationToken cancellationToken)
    {
        if (models.Find(name, version) is not { } info)
        {
            return null;
        }

        var recipe = info.Metadata.Recipe;
        if (recipe?.Dataset is not { } dataset || !datasets.Exists(dataset))
        {
            throw new EvaluationUnavailableException(Unavailable(info));
        }

        var data = await datasets.LoadAsync(dataset, recipe.TrainImages > 0 ? recipe.TrainImages : null, recipe.TestImages > 0 ? recipe.TestImages : null, cancellationToken);
        return await QuantizeAsync(info, data, cancellationToken);
    }

    /// <summary>Why a version cannot be quantized here: its training images are not on this server.</summary>
    public static string Unavailable(ModelVersionInfo info) =>
        $"{info.Name} version {info.Version} was trained on '{info.Metadata.Recipe?.Dataset ?? "an unrecorded dataset"}', which this server does not have (never here, or deleted since); "
        + "its training images calibrate the int8 model and its test split measures it. An int8 model made earlier stays; without one the version serves fp32.";

    private async Task<Int8Record> QuantizeAsync(ModelVersionInfo info, DatasetSplit data, CancellationToken cancellationToken)
    {
        var options = serving.Value.Int8() with { Threads = Math.Max(1, TorchRuntime.Info.Threads) };
        var record = await TorchRuntime.RunOnOwnThread($"nin-quantize-{info.Name}-{info.Version}",
            () => Int8Cache.Prepare(info.Directory, data.Train, data.Test, options, cancellationToken));
        var (servable, warning) = record.Assess(options.MarginPoints);
        if (servable)
        {
            LogQuantized(logger, info.Name, info.Version, record.Accuracy!.Int8, record.Accuracy.Fp32, record.Accuracy.TestImages, record.Seconds);
        }
        else
        {
            LogNotServable(logger, info.Name, info.Version, warning!);
        }

        // This process serves it from its new file now, if it serves it at all (other replicas on their next load).
        if (services.GetRequiredService<Infrastructure.NinRole>().ServesApi)
        {
            await services.GetRequiredService<ModelRegistry>().ReloadAsync(info.Name, info.Version, cancellationToken);
        }

        return record;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Quantized {Model} version {Version}: int8 accuracy {Int8:F4} vs fp32 {Fp32:F4} on {TestImages} test images ({Seconds:F1} s)")]
    private static partial void LogQuantized(ILogger logger, string model, int version, double int8, double fp32, int testImages, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Model} version {Version}: {Warning}")]
    private static partial void LogNotServable(ILogger logger, string model, int version, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Model} version {Version} was not quantized ({Reason}); it serves fp32")]
    private static partial void LogNotQuantized(ILogger logger, string model, int version, string reason);
}
