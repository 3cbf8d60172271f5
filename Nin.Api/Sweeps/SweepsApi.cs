using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Api.Security;
using Nin.Api.Training;

namespace Nin.Api.Sweeps;

/// <summary>POST /sweeps queues a search over training settings; GET follows it; DELETE cancels it and its trials.</summary>
public static class SweepsApi
{
    public const int DefaultLimit = 50;

    public static IEndpointRouteBuilder MapSweepsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/sweeps").WithTags("Sweeps").WithRequiredScope();

        group.MapPost("/", StartSweep)
            .WithName("StartSweep")
            .WithSummary("Queue a sweep: trials over a search space, with early stopping")
            .WithDescription("Expands `space` into trials (`grid`: every combination of the listed values, last setting fastest; `random`: `maxTrials` seeded draws from lists and ranges, log-uniform with `log`) of the `base` training request and queues each as an ordinary training job (POST /train's rules and presets apply to every trial; a trial's job carries `request.sweepId` and `request.trial`), spread over every worker, each with its curves on the hub. After each epoch, where a trial runs, the early-stopping rule compares it with the other trials at the same epoch: `median` stops a trial whose best value so far is worse than the median of the others' running averages (Vizier's median stopping rule); `asha` keeps only the top 1/`reductionFactor` at each rung of `graceEpochs`·η^k epochs (asynchronous successive halving). A stopped trial ends `Stopped` with `stopReason`; a trial whose loss diverges (NaN) ends `Stopped` too. Trials that finish store a model version (never activated by themselves). When every trial has ended, the best final `metric` among them is the sweep's `best`; with `activate: true` its version is activated through the promotion gate (the sweep's `promotion` says whether, and why not). A sweep survives restarts and a worker's death as its jobs do. 400 names each bad field (`space.{setting}`, `base.{field}`, …); 409 when no live worker can run a trial; 503 when the queue cannot take every trial (nothing is left queued).")
            .Accepts<SweepRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status507InsufficientStorage)
            .RequireRateLimiting(SecurityExtensions.TrainPolicy);

        group.MapGet("/", ListSweeps)
            .WithName("ListSweeps")
            .WithSummary("List sweeps, newest first")
            .WithDescription("At most `limit` (1–500, default 50) sweeps, newest first, each with its trials as GET /sweeps/{sweepId} shows them.")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/{sweepId}", GetSweep)
            .WithName("GetSweep")
            .WithSummary("A sweep: its trials, their status and metric, the best trial")
            .WithDescription("Status (`Running` until every trial has ended; then `Succeeded` with `best`, or `Failed` when no trial stored a model; `Cancelled`), the settings, every trial (its searched `parameters`, its job's status, epochs completed of its epochs, latest and best `metric`, `stopReason`, its model version), `best` (while running: the best trial so far among those that finished), `promotion` (what `activate` did), and `epochsRun` against `epochsFull` (what running every trial to the end would take). `format=csv` answers the trials' runs table instead (the columns of GET /train?format=csv, a download `nin-sweep-{sweepId}.csv`). 404 for an unknown id; an unknown `format` is 400.")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapDelete("/{sweepId}", CancelSweep)
            .WithName("CancelSweep")
            .WithSummary("Cancel a sweep and its unfinished trials")
            .WithDescription("The sweep ends `Cancelled`; its queued trials never start and its running ones stop within a batch (each ends `Cancelled`); finished trials and their model versions stay. 202 with the sweep. 409 when it has already ended; 404 for an unknown id.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Results<AcceptedAtRoute<SweepSnapshot>, ValidationProblem, ProblemHttpResult> StartSweep(SweepRequest? request, SweepService sweeps, HttpContext context)
    {
        var created = sweeps.Create(request ?? new SweepRequest());
        if (created.Errors is { } errors)
        {
            return TypedResults.ValidationProblem(errors, title: "The sweep request is not valid.");
        }

        if (created.Refused is { } refusal)
        {
            return TypedResults.Problem(new HttpValidationProblemDetails(refusal.Errors)
            {
                Status = StatusCodes.Status409Conflict,
                Title = "No worker can run this sweep's trials.",
                Detail = refusal.Reason,
            });
        }

        if (created.QueueError is { } queueError)
        {
            context.Response.Headers.RetryAfter = "5";
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The job queue is not reachable.", detail: queueError);
        }

        var sweep = created.Sweep!;
        return TypedResults.AcceptedAtRoute(sweep, "GetSweep", new { sweepId = sweep.SweepId });
    }

    public static Results<Ok<IReadOnlyList<SweepSnapshot>>, ProblemHttpResult> ListSweeps(SweepService sweeps, int? limit = null)
    {
        if (limit is < 1 or > JobQuery.MaxLimit)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid query.", detail: $"limit must be between 1 and {JobQuery.MaxLimit}; got {limit}.");
        }

        return TypedResults.Ok(sweeps.List(limit ?? DefaultLimit));
    }

    public static Results<Ok<SweepSnapshot>, RunsCsvResult, ProblemHttpResult> GetSweep(string sweepId, SweepService sweeps, SweepStore store, HttpContext context, string? format = null)
    {
        if (format is not null && !RunsCsv.Formats.Contains(format))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid query.", detail: $"Unknown format '{format}'. Known: {string.Join(", ", RunsCsv.Formats)}.");
        }

        if (store.Get(sweepId) is not { } record)
        {
            return UnknownSweep(sweepId);
        }

        if (format == "csv" || (format is null && RunsCsv.AcceptsCsv(context.Request)))
        {
            return new RunsCsvResult(new JobPage(sweeps.TrialJobs(record), null), null, $"nin-sweep-{sweepId}.csv");
        }

        return TypedResults.Ok(sweeps.Snapshot(record));
    }

    public static Results<Accepted<SweepSnapshot>, ProblemHttpResult> CancelSweep(string sweepId, SweepService sweeps, SweepStore store)
    {
        if (store.Get(sweepId) is not { } record)
        {
            return UnknownSweep(sweepId);
        }

        return sweeps.Cancel(record) is { } cancelled
            ? TypedResults.Accepted($"/sweeps/{sweepId}", cancelled)
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The sweep has already ended.",
                detail: $"Sweep '{sweepId}' is {sweeps.Snapshot(record).Status}; only a running sweep can be cancelled.");
    }

    private static ProblemHttpResult UnknownSweep(string sweepId) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown sweep.", detail: $"There is no sweep '{sweepId}'.");
}

/// <summary>The sweeps' services: the store and the trials' judge everywhere a job may run; creation and the end where the API is served.</summary>
public static class SweepServiceExtensions
{
    public static IHostApplicationBuilder AddNinSweeps(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SweepOptions>().BindConfiguration(SweepOptions.SectionName)
            .Validate(o => o.PollInterval > TimeSpan.Zero, "Sweeps:PollInterval must be positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<SweepStore>();
        builder.Services.AddSingleton<TrialJudge>();
        builder.Services.AddSingleton<SweepService>();
        if (Infrastructure.NinRole.Of(builder).ServesApi)
        {
            builder.Services.AddSingleton<SweepSupervisor>();
            builder.Services.AddHostedService(s => s.GetRequiredService<SweepSupervisor>());
        }

        return builder;
    }
}
