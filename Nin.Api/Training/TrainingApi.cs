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
            .WithDescription("Queues a training run on the `training` queue (one job at a time per worker). Every field is optional. `recipe` picks a preset (GET /train/recipes): `d2l`, the default for the built-in datasets (the NiN, 10 epochs, batch 128, SGD lr 0.1, 224 px), or `robust`, the default for uploaded datasets (nin-bn, 30 epochs, batch 32, one-cycle SGD to lr 0.1 with momentum 0.9 and weight decay 1e-4, shifts and flips, 67 px); any field given overrides the preset. Returns 202 with the job id and a Location to poll; follow it live on the SignalR hub `/hubs/training`. A run that learned nothing succeeds with `warnings` and is not activated; a NaN or infinite loss fails it. 400 names each bad field. 409 when no live worker can run the job, with the reason and the fields concerned (`errors`): no worker is running, none has the `device` asked for (e.g. no worker has CUDA; `auto` is each worker's `Torch:Device`), or none has the memory a training step of this `batchSize` and `imageSize` needs free now. 503 when the job queue cannot take it; 507 when the job's record cannot be written for want of disk space (nothing is left behind either way).")
            .Accepts<TrainRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status507InsufficientStorage)
            .RequireRateLimiting(Security.SecurityExtensions.TrainPolicy);

        group.MapGet("/recipes", ListRecipes)
            .WithName("ListTrainingRecipes")
            .WithSummary("Recipe presets and network architectures")
            .WithDescription("The presets a training request's `recipe` names, with every field each one sets, and the architectures `architecture` may name (smallest input, parameters for one channel and ten classes).");

        group.MapGet("/", ListJobs)
            .WithName("ListTrainingJobs")
            .WithSummary("List training jobs, newest first, a page at a time")
            .WithDescription("Job snapshots (status, settings, progress, per-epoch metrics, `revision`), newest first: at most `limit` (1–500, default 50), only those with `status` when given (comma-separated, e.g. `Queued,Running`). When more follow, the answer carries the next page's cursor in `Link: <…>; rel=\"next\"` and `Nin-Next-Cursor`; pass it as `cursor`. Finished jobs are removed after `Training:FinishedJobRetention` (their models stay). Records that cannot be read are listed by GET /train/damaged. `format=csv` (or, without `format`, `Accept: text/csv` ranked above `application/json`) answers the runs table instead, a download `nin-runs.csv` (`text/csv; charset=utf-8`, RFC 4180, header row always): one row per run with its settings, final and best metrics, times (ISO 8601 UTC), device, worker, warnings and error; a text field starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'` so spreadsheets do not run it. Without `limit` and `cursor` the table holds every matching run, streamed (read 500 records at a time); with either it is the page the JSON answer would be, with the same next-page headers. An unknown `format` is 400.")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/damaged", ListDamagedJobs)
            .WithName("ListDamagedTrainingJobs")
            .WithSummary("Job records that cannot be read")
            .WithDescription("Records that exist but cannot be read (a truncated or garbled `job.json` after a crash), with the reason. They are kept as they are, never deleted automatically; the log names them at start.");

        group.MapGet("/{jobId}", GetJob)
            .WithName("GetTrainingJob")
            .WithSummary("A training job's status, progress and per-epoch metrics")
            .WithDescription("The job's snapshot: status, the settings it runs with (defaults filled in), the current epoch's progress, metrics of every finished epoch, the stored model version once it succeeded, and `revision` (it grows with every change: of two snapshots the higher one is newer). 404 for an unknown id; 409 when its record is damaged.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapDelete("/{jobId}", CancelTrainingJob)
            .WithName("CancelTrainingJob")
            .WithSummary("Cancel a training job")
            .WithDescription("A queued job never starts (200; its Hangfire job is deleted). A running job stops within one batch and ends `Cancelled` (202: cancellation requested), whichever process runs it: with several API replicas and workers the request reaches the worker through PostgreSQL (LISTEN/NOTIFY). A finished job cannot be cancelled (409).")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Results<AcceptedAtRoute<TrainAccepted>, ValidationProblem, ProblemHttpResult> StartTraining(
        TrainRequest? request, TrainRequestValidator validator, WorkerAdmission admission, ITrainingJobStore jobs, TrainingNotifier notifier, HttpContext context)
    {
        var (settings, errors) = validator.Validate(request ?? new TrainRequest());
        if (settings is null)
        {
            return TypedResults.ValidationProblem(errors, title: "The training request is not valid.");
        }

        if (admission.Check(settings) is { } refusal)
        {
            return TypedResults.Problem(new HttpValidationProblemDetails(refusal.Errors)
            {
                Status = StatusCodes.Status409Conflict,
                Title = "No worker can run this job.",
                Detail = refusal.Reason,
            });
        }

        // The record and its queue entry together (one transaction on PostgreSQL): no record without a run, nor a run without a record.
        JobSnapshot job;
        try
        {
            job = jobs.Create(settings, (client, created) => client.Enqueue<TrainingJob>(j => j.RunAsync(created.JobId, CancellationToken.None)));
        }
        catch (BackgroundJobClientException ex)
        {
            context.Response.Headers.RetryAfter = "5";
            return TypedResults.Problem(
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "The job queue is not reachable.",
                detail: $"Hangfire could not queue the job ({ex.GetBaseException().GetType().Name}); nothing was recorded. Retry shortly.");
        }

        notifier.JobUpdated(job);
        return TypedResults.AcceptedAtRoute(new TrainAccepted(job.JobId, job.Status), "GetTrainingJob", new { jobId = job.JobId });
    }

    public static Ok<RecipesResponse> ListRecipes() => TypedResults.Ok(new RecipesResponse(
        [.. TrainingRecipes.All.Select(r => new RecipeInfo(
            r.Name, r.Description, r.Name == TrainingRecipes.RobustName ? "uploaded datasets" : "built-in datasets", r.Architecture, r.Epochs, r.BatchSize,
            r.LearningRate, LearningRateSchedules.Name(r.Schedule), r.Momentum, r.WeightDecay, r.Shift, r.Flip, r.LabelSmoothing))],
        [.. NetworkArchitectures.All.Select(a => new ArchitectureInfo(a.Name, a.Description, a.MinInputSize, a.ParameterCount(1, 10)))]));

    public static Results<Ok<IReadOnlyList<JobSnapshot>>, RunsCsvResult, ProblemHttpResult> ListJobs(
        ITrainingJobStore jobs, HttpContext context, int? limit = null, string? cursor = null, string? status = null, string? format = null)
    {
        // `format` wins; without it, `Accept: text/csv` asks for the table too. Either way the answer depends on Accept.
        context.Response.Headers.Append("Vary", "Accept");
        if (format is not null && !RunsCsv.Formats.Contains(format))
        {
            return BadQuery($"Unknown format '{format}'. Known: {string.Join(", ", RunsCsv.Formats)}.");
        }

        var csv = format == "csv" || (format is null && RunsCsv.AcceptsCsv(context.Request));
        if (limit is < 1 or > JobQuery.MaxLimit)
        {
            return BadQuery($"limit must be between 1 and {JobQuery.MaxLimit}; got {limit}.");
        }

        JobCursor? after = null;
        if (!string.IsNullOrEmpty(cursor) && (after = JobCursor.Parse(cursor)) is null)
        {
            return BadQuery("cursor is not one this service handed out: pass the Nin-Next-Cursor of the previous page as it was.");
        }

        var statuses = new List<JobStatus>();
        foreach (var part in (status ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse<JobStatus>(part, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
            {
                return BadQuery($"Unknown status '{part}'. Known: {string.Join(", ", Enum.GetNames<JobStatus>())}.");
            }

            statuses.Add(parsed);
        }

        // The runs table without limit or cursor is every matching run (an export of "all runs"), read a page of
        // MaxLimit records at a time while it streams; with either, it is the one page JSON would be.
        if (csv && limit is null && after is null)
        {
            var all = new JobQuery(JobQuery.MaxLimit, null, statuses);
            return new RunsCsvResult(jobs.List(all), next => jobs.List(all with { After = next }));
        }

        var size = limit ?? JobQuery.DefaultLimit;
        var page = jobs.List(new JobQuery(size, after, statuses));
        if (page.NextCursor is { } nextCursor)
        {
            var query = $"?limit={size}&cursor={Uri.EscapeDataString(nextCursor)}" + (status is { Length: > 0 } ? $"&status={Uri.EscapeDataString(status)}" : "") + (csv ? "&format=csv" : "");
            context.Response.Headers["Nin-Next-Cursor"] = nextCursor;
            context.Response.Headers.Link = $"<{context.Request.PathBase}{context.Request.Path}{query}>; rel=\"next\"";
        }

        if (csv)
        {
            return new RunsCsvResult(page, null);
        }

        return TypedResults.Ok(page.Items);
    }

    public static Ok<IReadOnlyList<DamagedJobRecord>> ListDamagedJobs(ITrainingJobStore jobs) => TypedResults.Ok(jobs.Damaged());

    public static Results<Ok<JobSnapshot>, ProblemHttpResult> GetJob(string jobId, ITrainingJobStore jobs)
    {
        try
        {
            return jobs.Get(jobId) is { } job ? TypedResults.Ok(job) : UnknownJob(jobId);
        }
        catch (DamagedJobException ex)
        {
            return Damaged(ex);
        }
    }

    public static Results<Ok<JobSnapshot>, Accepted<JobSnapshot>, ProblemHttpResult> CancelTrainingJob(
        string jobId, ITrainingJobStore jobs, JobCancellation cancellation, TrainingNotifier notifier, IBackgroundJobClient hangfire) =>
        CancelJob(jobId, jobs, cancellation, notifier, hangfire);

    /// <summary>DELETE /train/{jobId} without touching Hangfire's job (a queued run then finds its record Cancelled and skips).</summary>
    public static Results<Ok<JobSnapshot>, Accepted<JobSnapshot>, ProblemHttpResult> CancelJob(
        string jobId, ITrainingJobStore jobs, JobCancellation cancellation, TrainingNotifier notifier) =>
        CancelJob(jobId, jobs, cancellation, notifier, null);

    /// <summary>DELETE /train/{jobId}; with <paramref name="hangfire"/>, a queued job's Hangfire job is deleted too.</summary>
    public static Results<Ok<JobSnapshot>, Accepted<JobSnapshot>, ProblemHttpResult> CancelJob(
        string jobId, ITrainingJobStore jobs, JobCancellation cancellation, TrainingNotifier notifier, IBackgroundJobClient? hangfire)
    {
        JobSnapshot? job;
        try
        {
            job = jobs.Get(jobId);
        }
        catch (DamagedJobException ex)
        {
            return Damaged(ex);
        }

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
                notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Cancelled, null, null, null, Revision: cancelled.Revision));
                if (cancelled.HangfireJobId is { } hangfireId)
                {
                    hangfire?.Delete(hangfireId); // /hangfire shows it deleted too; its record is already Cancelled
                }

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

    private static ProblemHttpResult Damaged(DamagedJobException ex) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The job's record is damaged.", detail: $"{ex.Message} It is kept as it is; GET /train/damaged lists such records.");

    private static ProblemHttpResult BadQuery(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid query.", detail: detail);

    private static ProblemHttpResult UnknownJob(string jobId) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown training job.", detail: $"There is no training job '{jobId}'.");
}
