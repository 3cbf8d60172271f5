using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Model.Network;
using Nin.Model.Training;
using Nin.Api.Security;

namespace Nin.Api.Training;

/// <summary>POST /train queues a job; GET follows it; DELETE cancels it. Live events: the hub at /hubs/training.</summary>
public static class TrainingApi
{
    public static IEndpointRouteBuilder MapTrainingApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/train").WithTags("Training").WithRequiredScope();

        group.MapPost("/", StartTraining)
            .WithName("StartTraining")
            .WithSummary("Queue a training job")
            .WithDescription("Queues a training run on the `training` queue (one job at a time). Every field is optional. `recipe` picks a preset (GET /train/recipes): `d2l`, the default for the built-in datasets (the NiN, 10 epochs, batch 128, SGD lr 0.1, 224 px), or `robust`, the default for uploaded datasets (nin-bn, 30 epochs, batch 32, one-cycle SGD to lr 0.1 with momentum 0.9 and weight decay 1e-4, shifts and flips, 67 px); any field given overrides the preset. Returns 202 with the job id and a Location to poll; follow it live on the SignalR hub `/hubs/training`. A run that learned nothing succeeds with `warnings` and is not activated; a NaN or infinite loss fails it. 400 names each bad field, including a `batchSize` and `imageSize` whose training step cannot fit in the memory free now.")
            .Accepts<TrainRequest>("application/json")
            .ProducesValidationProblem()
            .RequireRateLimiting(Security.SecurityExtensions.TrainPolicy);

        group.MapGet("/recipes", ListRecipes)
            .WithName("ListTrainingRecipes")
            .WithSummary("Recipe presets and network architectures")
            .WithDescription("The presets a training request's `recipe` names, with every field each one sets, and the architectures `architecture` may name (smallest input, parameters for one channel and ten classes).");

        group.MapGet("/", ListJobs)
            .WithName("ListTrainingJobs")
            .WithSummary("List training jobs, newest first")
            .WithDescription("Every job this service knows, newest first, with status, settings, progress and per-epoch metrics (the same snapshots the hub's `SubscribeAll` returns).");

        group.MapGet("/{jobId}", GetJob)
            .WithName("GetTrainingJob")
            .WithSummary("A training job's status, progress and per-epoch metrics")
            .WithDescription("The job's snapshot: status, the settings it runs with (defaults filled in), the current epoch's progress, metrics of every finished epoch, and the stored model version once it succeeded. 404 for an unknown id.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapDelete("/{jobId}", CancelJob)
            .WithName("CancelTrainingJob")
            .WithSummary("Cancel a training job")
            .WithDescription("A queued job never starts (200). A running job stops within one batch and ends `Cancelled` (202: cancellation requested), whichever process runs it: with several API replicas and workers the request reaches the worker through PostgreSQL (LISTEN/NOTIFY). A finished job cannot be cancelled (409).")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Results<AcceptedAtRoute<TrainAccepted>, ValidationProblem> StartTraining(
        TrainRequest? request, TrainRequestValidator validator, ITrainingJobStore jobs, IBackgroundJobClient hangfire, TrainingNotifier notifier)
    {
        var (settings, errors) = validator.Validate(request ?? new TrainRequest());
        if (settings is null)
        {
            return TypedResults.ValidationProblem(errors, title: "The training request is not valid.");
        }

        var job = jobs.Create(settings);
        hangfire.Enqueue<TrainingJob>(j => j.RunAsync(job.JobId, CancellationToken.None));
        notifier.JobUpdated(job);
        return TypedResults.AcceptedAtRoute(new TrainAccepted(job.JobId, job.Status), "GetTrainingJob", new { jobId = job.JobId });
    }

    public static Ok<RecipesResponse> ListRecipes() => TypedResults.Ok(new RecipesResponse(
        [.. TrainingRecipes.All.Select(r => new RecipeInfo(
            r.Name, r.Description, r.Name == TrainingRecipes.RobustName ? "uploaded datasets" : "built-in datasets", r.Architecture, r.Epochs, r.BatchSize,
            r.LearningRate, LearningRateSchedules.Name(r.Schedule), r.Momentum, r.WeightDecay, r.Shift, r.Flip, r.LabelSmoothing))],
        [.. NetworkArchitectures.All.Select(a => new ArchitectureInfo(a.Name, a.Description, a.MinInputSize, a.ParameterCount(1, 10)))]));

    public static Ok<IReadOnlyList<JobSnapshot>> ListJobs(ITrainingJobStore jobs) => TypedResults.Ok(jobs.List());

    public static Results<Ok<JobSnapshot>, ProblemHttpResult> GetJob(string jobId, ITrainingJobStore jobs) =>
        jobs.Get(jobId) is { } job ? TypedResults.Ok(job) : UnknownJob(jobId);

    public static Results<Ok<JobSnapshot>, Accepted<JobSnapshot>, ProblemHttpResult> CancelJob(
        string jobId, ITrainingJobStore jobs, JobCancellation cancellation, TrainingNotifier notifier)
    {
        var job = jobs.Get(jobId);
        if (job is null)
        {
            return UnknownJob(jobId);
        }

        if (job.Status == JobStatus.Queued)
        {
            var cancelled = jobs.Update(jobId, j => j.Status == JobStatus.Queued ? j with { Status = JobStatus.Cancelled, FinishedAt = DateTimeOffset.UtcNow } : null);
            if (cancelled is not null)
            {
                notifier.JobUpdated(cancelled);
                notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Cancelled, null, null, null));
                return TypedResults.Ok(cancelled);
            }

            job = jobs.Get(jobId)!;
        }

        if (job.Status == JobStatus.Running && cancellation.Request(jobId))
        {
            return TypedResults.Accepted($"/train/{jobId}", job);
        }

        return TypedResults.Problem(
            statusCode: StatusCodes.Status409Conflict,
            title: "The job has already finished.",
            detail: $"Training job '{jobId}' is {job.Status}; only queued or running jobs can be cancelled.");
    }

    private static ProblemHttpResult UnknownJob(string jobId) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown training job.", detail: $"There is no training job '{jobId}'.");
}
