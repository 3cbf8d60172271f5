using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Onnx;

namespace Nin.Api.Models;

/// <summary>A version's int8 figures as the version lists show them: both accuracies, and whether int8 may serve (else why not).</summary>
public sealed record Int8Summary(double? Fp32Accuracy, double? Int8Accuracy, double? DropPoints, int TestImages, bool Servable, string? Warning, DateTimeOffset QuantizedAt)
{
    /// <summary>The summary of a version's int8 record under the margin in force; null when it has none.</summary>
    public static Int8Summary? Of(ModelVersionInfo version, double marginPoints)
    {
        if (Int8Cache.Read(version.Directory, version.Metadata) is not { } record)
        {
            return null;
        }

        var (servable, warning) = record.Assess(marginPoints);
        var a = record.Accuracy;
        return new Int8Summary(a?.Fp32, a?.Int8, a?.DropPoints, a?.TestImages ?? 0, servable, warning, record.QuantizedAt);
    }
}

/// <summary>A version's int8 record with the serving decision under the margin in force (<c>Serving:Int8MarginPoints</c>).</summary>
public sealed record QuantizationResponse(string Name, int Version, bool Servable, string? Warning, double MarginPoints, Int8Record Record);

/// <summary>The answer to POST .../quantize: where the result will be.</summary>
public sealed record QuantizationAccepted(string Name, int Version, string HangfireJobId, string Location);

/// <summary>int8 models of versions: make one (calibrated and measured on the version's dataset) and read its record.</summary>
public static class QuantizationApi
{
    public static IServiceCollection AddNinQuantization(this IServiceCollection services)
    {
        services.AddSingleton<VersionQuantizer>();
        services.AddTransient<QuantizationJob>();
        return services;
    }

    public static IEndpointRouteBuilder MapQuantizationApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models/{name}/versions/{version:int}").WithTags("Models").ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapPost("/quantize", QuantizeModelVersion)
            .WithName("QuantizeModelVersion")
            .WithSummary("Make the version's int8 model")
            .WithDescription("""
                Queues a Hangfire job on the `training` queue that makes the version's static int8 model (QDQ: int8 per-channel
                convolution weights, uint8 activations) calibrated on a random sample of its own training images
                (`Serving:Int8CalibrationImages`, default 256), measures fp32 and int8 accuracy on its test split, and stores the
                int8 ONNX file and `quantization.json` beside the weights, replacing earlier ones. Training does this for every
                new version; use this for imported or older versions. 202 with a Location for the result; 404 for an unknown
                version; 409 when its dataset is not on this server (deleted uploads included).
                """)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapGet("/quantization", GetModelQuantization)
            .WithName("GetModelQuantization")
            .WithSummary("The version's int8 model: accuracy against fp32, calibration, serving decision")
            .WithDescription("""
                The record of the version's int8 model: its file and SHA-256, the calibration sample (dataset, images, seed),
                fp32 and int8 accuracy on the test split with their top-1 agreement and largest probability difference, and
                `servable`: whether int8 may serve under `Serving:Int8MarginPoints` (default 0.5 percentage points below fp32),
                else `warning` says why and the version serves fp32. 404 until the version is quantized.
                """)
            .ProducesProblem(StatusCodes.Status404NotFound);

        return app;
    }

    public static Results<Accepted<QuantizationAccepted>, ProblemHttpResult> QuantizeModelVersion(
        string name, int version, ModelStore store, Datasets.DatasetCatalog datasets, IBackgroundJobClient hangfire)
    {
        if (!ModelStore.IsValidName(name))
        {
            return InvalidName();
        }

        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        if (info.Metadata.Recipe?.Dataset is not { } dataset || !datasets.Exists(dataset))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version's dataset is not here.", detail: VersionQuantizer.Unavailable(info));
        }

        var jobId = hangfire.Enqueue<QuantizationJob>(j => j.RunAsync(name, version, CancellationToken.None));
        var location = $"/models/{name}/versions/{version}/quantization";
        return TypedResults.Accepted(location, new QuantizationAccepted(name, version, jobId, location));
    }

    public static Results<Ok<QuantizationResponse>, ProblemHttpResult> GetModelQuantization(string name, int version, ModelStore store, IOptions<ServingOptions> serving)
    {
        if (!ModelStore.IsValidName(name))
        {
            return InvalidName();
        }

        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        if (Int8Cache.Read(info.Directory, info.Metadata) is not { } record)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not quantized.",
                detail: $"{name} version {version} has no int8 model made from its weights; POST /models/{name}/versions/{version}/quantize makes one.");
        }

        var margin = serving.Value.Int8MarginPoints;
        var (servable, warning) = record.Assess(margin);
        return TypedResults.Ok(new QuantizationResponse(name, version, servable, warning, margin, record));
    }

    private static ProblemHttpResult InvalidName() =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid model name.", detail: $"A model name must {ModelStore.NameRule}.");

    private static ProblemHttpResult NotFound(string name, int version) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model version.", detail: $"There is no model '{name}' version {version}.");
}
