using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;
using Nin.Api.Security;

namespace Nin.Api.Models;

/// <summary>The answer to POST .../evaluate: where the evaluation will be.</summary>
public sealed record EvaluationAccepted(string Name, int Version, string HangfireJobId, string Location);

/// <summary>A test image with its true label and what the model said.</summary>
public sealed record TestSample(int Index, string TrueLabel, string PredictedLabel, double Probability, bool Correct, string Image);

/// <summary>Test images of a version, misclassified first.</summary>
public sealed record TestSamplesResponse(string Name, int Version, int TestImages, int Misclassified, IReadOnlyList<TestSample> Items);

/// <summary>Evaluation of model versions on their test split: confusion matrix, per-class figures, labelled test images.</summary>
public static class EvaluationApi
{
    public const int MaxSamples = 200;

    public const int DefaultSamples = 24;

    public static IServiceCollection AddNinEvaluation(this IServiceCollection services)
    {
        services.AddSingleton<ModelEvaluator>();
        services.AddSingleton<ModelPromotion>();
        services.AddSingleton<ModelActivation>();
        services.AddOptions<PromotionOptions>().BindConfiguration(PromotionOptions.SectionName)
            .Validate(o => o.MaxAccuracyDrop >= 0 && o.RecallFloor is >= 0 and <= 1 && o.EvaluationTimeoutSeconds >= 1,
                "Promotion:MaxAccuracyDrop cannot be negative, Promotion:RecallFloor must be between 0 and 1 and Promotion:EvaluationTimeoutSeconds at least 1.")
            .ValidateOnStart();
        services.AddSingleton<TestSampleGallery>();
        services.AddSingleton<TestSampleThumbnails>();
        services.AddTransient<EvaluationJob>();
        return services;
    }

    public static IEndpointRouteBuilder MapEvaluationApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models/{name}/versions/{version:int}").WithTags("Models").WithRequiredScope().RequireValidModelName().ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapPost("/evaluate", EvaluateModelVersion)
            .WithName("EvaluateModelVersion")
            .WithSummary("Evaluate a version on its test split")
            .WithDescription("Queues a Hangfire job on the `training` queue (after any running training job) that runs a fresh copy of the version over the test split of the dataset it was trained on (as many test images as its recipe records), with training's preprocessing, on the device `Torch:Device` names, and stores the confusion matrix and per-class figures beside it. Training stores this from its last test pass, and the shipped model comes with it; use this for imported or older versions. 202 with a Location for the result (GET .../evaluation reports it queued, running or failed until it is there); 404 for an unknown version; 409 when its dataset is not on this server or its files are missing (and are not downloaded here).")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapGet("/evaluation", GetModelEvaluation)
            .WithName("GetModelEvaluation")
            .WithSummary("Confusion matrix and per-class figures of a version")
            .WithDescription("`confusion` has a row per true class and a column per predicted class, in the order of `classes`; `perClass` gives precision, recall and support (test images of the class); `accuracy` is the diagonal over `testImages`. 404 until the version has been evaluated (at the end of its training, or by POST .../evaluate); the problem's `evaluation` says `none`, `queued`, `running` or `failed`, and a failed one's `detail` says why.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapGet("/samples", GetTestSamples)
            .RequireRateLimiting(SecurityExtensions.ExportPolicy)
            .WithName("GetTestSamples")
            .WithSummary("Test images with true and predicted labels, misclassified first")
            .WithDescription("Like d2l's predict_ch3: test images of the version's evaluation with the true label, the predicted label and its probability, and the image as a small PNG data URL at the dataset's native size. Misclassified images come first, the most confident mistakes first; `onlyWrong=true` lists only those. `limit` is 1–200 (default 24). 404 until the version has been evaluated. The active version is open; with API keys in force any other needs a key with the `predict` scope (401). Rendered once per evaluation and cached; rate-limited per client (429).")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapGet("/samples/{index:int}", GetTestSampleImage)
            .WithName("GetTestSampleImage")
            .WithSummary("One test image of a version's split, as PNG")
            .WithDescription("Test image `index` (0-based, in the test split's order: the `index` of GET .../samples and of GET /models/{name}/compare) of the split the version was trained and evaluated on, as a PNG at the dataset's native size; the thumbnails a comparison links to. 404 for an unknown version or an index outside its test split; 409 when its dataset, or the dataset's files, are not on this server (a GET downloads nothing). The active version is open; with API keys in force any other needs a key with the `predict` scope (401). Images are cached (`Cache-Control: private`), and the split read for one is kept a minute for the others.")
            .Produces(StatusCodes.Status200OK, contentType: "image/png")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Results<Accepted<EvaluationAccepted>, ProblemHttpResult> EvaluateModelVersion(
        string name, int version, ModelStore store, Datasets.DatasetCatalog datasets, IBackgroundJobClient hangfire,
        Microsoft.Extensions.Options.IOptions<Infrastructure.NinOptions> options)
    {
        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        if (info.Metadata.Recipe?.Dataset is not { } dataset || !datasets.Exists(dataset))
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status409Conflict,
                title: "The version's dataset is not here.",
                detail: $"{name} version {version} was trained on '{info.Metadata.Recipe?.Dataset ?? "an unrecorded dataset"}', which this server does not have; its test split is needed to evaluate it.");
        }

        // A built-in set whose files are missing, on a server that does not download them: the job could only fail.
        if (!CanLoad(datasets, dataset, options.Value))
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status409Conflict,
                title: "The version's dataset files are missing.",
                detail: $"{name} version {version} was trained on '{dataset}', whose files are not in the data folder (and Nin:DownloadDatasets is off); put them there to evaluate it.");
        }

        var jobId = hangfire.Enqueue<EvaluationJob>(j => j.RunAsync(name, version, CancellationToken.None));
        new EvaluationStatus(EvaluationStatus.Queued, null, jobId, DateTimeOffset.UtcNow).Write(info.Directory);
        var location = $"/models/{name}/versions/{version}/evaluation";
        return TypedResults.Accepted(location, new EvaluationAccepted(name, version, jobId, location));
    }

    public static Results<Ok<ModelEvaluation>, ProblemHttpResult> GetModelEvaluation(string name, int version, ModelStore store)
    {
        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        if (EvaluationFiles.ReadEvaluation(info.Directory) is { } evaluation)
        {
            return TypedResults.Ok(evaluation);
        }

        var status = EvaluationStatus.Read(info.Directory);
        var problem = status?.State switch
        {
            EvaluationStatus.Failed => new ProblemDetails
            {
                Title = "The evaluation failed.",
                Detail = $"The evaluation of {name} version {version} failed: {status.Error} POST /models/{name}/versions/{version}/evaluate to try again.",
            },
            EvaluationStatus.Queued or EvaluationStatus.Running => new ProblemDetails
            {
                Title = "The evaluation is not finished.",
                Detail = $"The evaluation of {name} version {version} is {status.State}; ask again shortly.",
            },
            _ => new ProblemDetails
            {
                Title = "Not evaluated yet.",
                Detail = $"{name} version {version} has no evaluation yet: POST /models/{name}/versions/{version}/evaluate.",
            },
        };
        problem.Status = StatusCodes.Status404NotFound;
        problem.Extensions["evaluation"] = status?.State ?? "none";
        if (status is { State: EvaluationStatus.Failed })
        {
            problem.Extensions["error"] = status.Error;
            problem.Extensions["failedAt"] = status.At;
        }

        return TypedResults.Problem(problem);
    }

    public static async Task<Results<Ok<TestSamplesResponse>, ProblemHttpResult>> GetTestSamples(
        string name, int version, HttpContext context, ModelStore store, VersionAccess access, TestSampleGallery gallery, CancellationToken cancellationToken, bool onlyWrong = false, int limit = DefaultSamples)
    {
        if (limit is < 1 or > MaxSamples)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid limit.", detail: $"limit must be between 1 and {MaxSamples}.");
        }

        if (!access.MayServe(context, name, version))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: VersionAccess.DeniedTitle, detail: VersionAccess.DeniedDetail);
        }

        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        if (EvaluationFiles.ReadPredictions(info.Directory) is not { } predictions || !predictions.IsConsistent(info.Metadata.ClassNames.Count))
        {
            return NotEvaluated(name, version);
        }

        TestSampleGallery.Gallery shown;
        try
        {
            shown = await gallery.GetAsync(info, predictions, cancellationToken);
        }
        catch (EvaluationUnavailableException ex)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version's dataset is not here.", detail: ex.Message);
        }

        if (shown.OutOfDate is { } reason)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The evaluation is out of date.", detail: reason);
        }

        var items = shown.Items.Take(onlyWrong ? Math.Min(limit, shown.Misclassified) : limit).ToArray();
        return TypedResults.Ok(new TestSamplesResponse(name, version, shown.TestImages, shown.Misclassified, items));
    }

    public static async Task<Results<FileContentHttpResult, ProblemHttpResult>> GetTestSampleImage(
        string name, int version, int index, HttpContext context, ModelStore store, VersionAccess access, Datasets.DatasetCatalog datasets, TestSampleThumbnails thumbnails, CancellationToken cancellationToken)
    {
        if (!access.MayServe(context, name, version))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: VersionAccess.DeniedTitle, detail: VersionAccess.DeniedDetail);
        }

        if (store.Find(name, version) is not { } info)
        {
            return NotFound(name, version);
        }

        // Whatever the server may download for a job, a GET reads only what is here.
        if (info.Metadata.Recipe?.Dataset is { } dataset && datasets.Find(dataset) is { } builtIn && !datasets.Describe(builtIn).Available)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version's dataset files are missing.",
                detail: $"{name} version {version} was trained on '{dataset}', whose files are not in the data folder.");
        }

        byte[]? png;
        try
        {
            png = await thumbnails.GetAsync(info, index, cancellationToken);
        }
        catch (EvaluationUnavailableException ex)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version's dataset is not here.", detail: ex.Message);
        }

        if (png is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such test image.",
                detail: $"{name} version {version}'s test split has no image {index} (indices start at 0).");
        }

        context.Response.Headers.CacheControl = "private, max-age=3600";
        return TypedResults.File(png, "image/png");
    }

    /// <summary>An upload is here or not; a built-in's files are here, or the job may download them (Nin:DownloadDatasets).</summary>
    private static bool CanLoad(Datasets.DatasetCatalog datasets, string dataset, Infrastructure.NinOptions options) =>
        datasets.Find(dataset) is not { } builtIn || options.DownloadDatasets || datasets.Describe(builtIn).Available;

    private static ProblemHttpResult NotFound(string name, int version) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model version.", detail: $"There is no model '{name}' version {version}.");

    private static ProblemHttpResult NotEvaluated(string name, int version) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not evaluated yet.", detail: $"{name} version {version} has no evaluation yet: POST /models/{name}/versions/{version}/evaluate.");
}
