using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;
using Nin.Api.Security;

namespace Nin.Api.Models;

/// <summary>
/// A model version as the API lists it. <c>ForcedActivations</c>: the times it was activated past the promotion gate
/// (<c>?force=true</c>: when, by which key, the reasons overridden); empty when never. <c>Promotion</c>: only in the
/// answer to an activation (or an import or training job that asked for one), the gate's decision: what it was compared
/// with and on which split (<c>comparedOn</c>, <c>note</c>), both figures and the per-class changes.
/// </summary>
public sealed record ModelVersionResponse(
    string Name,
    int Version,
    bool Active,
    DateTimeOffset CreatedAt,
    string? Dataset,
    int ImageSize,
    int InputChannels,
    IReadOnlyList<string> Classes,
    double? TestAccuracy,
    ModelMetadata Metadata,
    Int8Summary? Int8 = null,
    IReadOnlyList<ForcedActivation>? ForcedActivations = null,
    PromotionDecision? Promotion = null)
{
    /// <summary>
    /// The version as the API shows it; with <paramref name="int8MarginPoints"/> (<c>Serving:Int8MarginPoints</c>) its int8
    /// summary, whose verdict that margin decides (a new import has none to show).
    /// </summary>
    public static ModelVersionResponse From(ModelVersionInfo v, double? int8MarginPoints = null, PromotionDecision? promotion = null) => new(
        v.Name, v.Version, v.Active, v.Metadata.CreatedAt, v.Metadata.Recipe?.Dataset, v.Metadata.ImageSize,
        v.Metadata.InputChannels, v.Metadata.ClassNames, v.Metadata.Metrics?.TestAccuracy, v.Metadata,
        int8MarginPoints is { } margin ? Int8Summary.Of(v, margin) : null,
        Nin.Model.Evaluation.ForcedActivations.Read(v.Directory), promotion);
}

/// <summary>A model name and its versions, newest first.</summary>
public sealed record ModelResponse(string Name, IReadOnlyList<ModelVersionResponse> Versions);

/// <summary>All models and which version is served; <c>Damaged</c>: version folders that cannot be read, with the reason (kept, never deleted automatically).</summary>
public sealed record ModelsResponse(ActiveModel? Active, IReadOnlyList<ModelResponse> Models, IReadOnlyList<DamagedVersion>? Damaged = null);

public static class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        // Every {name} is checked against the store's name rule first (400), so no route reaches the disk with another.
        var models = app.MapGroup("/models").WithTags("Models").WithRequiredScope();
        models.MapGet("/", ListModels)
            .WithName("ListModels")
            .WithSummary("Stored models and their versions")
            .WithDescription("Every model name with its versions (newest first): created time, dataset, image size, classes, test accuracy, and which version `/predict` serves. `damaged` lists version folders that cannot be read (a garbled `model.json`, missing weights) with the reason; they are kept as they are.");

        var group = models.MapGroup("/").RequireValidModelName().ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/{name}/versions/{version:int}", GetModelVersion)
            .WithName("GetModelVersion")
            .WithSummary("One model version with its full metadata")
            .WithDescription("The version's metadata: training recipe, preprocessing, classes, per-epoch history and test accuracy. 404 when there is no such version; 409 when its folder cannot be read (damaged).")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapPost("/{name}/versions/{version:int}/activate", ActivateModelVersion)
            .WithName("ActivateModelVersion")
            .WithSummary("Serve this version")
            .WithDescription("""
                Makes the version the one `/predict` serves, safely: the version is loaded and passes a warm-up pass on this replica
                before the active pointer moves, so the answer comes once it serves. If it cannot be loaded (damaged or missing files,
                a network that does not fit its metadata), the activation is refused with 422 naming the cause and the old version
                stays active and keeps serving. Requests in flight finish on the old version; new ones use this one. No restart.
                Other replicas (PostgreSQL) load it in the background while their old version serves; one that cannot load it keeps
                serving the old one, reports it in /health/ready (degraded, with the cause) and retries with back-off.

                First the promotion gate (docs/models.md, `Promotion:*`) compares the version with the active one on the same test
                split, from their evaluations (a missing one is made first, for at most `Promotion:EvaluationTimeoutSeconds`; when
                the two were evaluated on different splits, the active version is measured on this version's split and `comparedOn`
                says `candidate-split`). 409 when the version was flagged as not having learned (`did-not-learn`), when its accuracy
                is more than `Promotion:MaxAccuracyDrop` points below the active version's (`accuracy`), when fewer of its classes
                reach a recall of `Promotion:RecallFloor` (`recall-floor`), or when it has no evaluation (`not-evaluated`) or the
                active version could not be measured on its split (`not-compared`): the problem lists the `reasons` and gives
                `candidate` and `active` (accuracy, classes above the floor), `accuracyDelta` and `perClass` (recall and precision,
                a = active, b = this version). The first activation (nothing served) and the active version itself always pass;
                so does a version whose classes differ from the active one's (not compared, said so in `note`).
                `force=true` activates it anyway and records that on the version (`forcedActivations`: when, by which key, the
                reasons overridden); with API keys in force it needs the `admin` scope (403). The answer's `promotion` is the
                gate's decision.
                """)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);

        group.MapDelete("/{name}/versions/{version:int}", DeleteModelVersion)
            .WithName("DeleteModelVersion")
            .WithSummary("Delete a version")
            .WithDescription("Refused (409) for the active version: activate another first.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Ok<ModelsResponse> ListModels(ModelStore store, IOptions<ServingOptions> serving)
    {
        var models = store.List()
            .GroupBy(v => v.Name)
            .Select(g => new ModelResponse(g.Key, g.OrderByDescending(v => v.Version).Select(v => ModelVersionResponse.From(v, serving.Value.Int8MarginPoints)).ToArray()))
            .ToArray();
        return TypedResults.Ok(new ModelsResponse(store.Active, models, store.Damaged()));
    }

    public static Results<Ok<ModelVersionResponse>, ProblemHttpResult> GetModelVersion(string name, int version, ModelStore store, IOptions<ServingOptions> serving) =>
        store.Find(name, version) is { } v ? TypedResults.Ok(ModelVersionResponse.From(v, serving.Value.Int8MarginPoints))
        : store.Damage(name, version) is { } damage ? TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The model version is damaged.", detail: $"{name} version {version} cannot be read: {damage} It is kept as it is.")
        : NotFound(name, version);

    /// <summary>
    /// Safe activation: the promotion gate first (<see cref="ModelPromotion"/>; <paramref name="force"/> overrides it and is
    /// recorded), then load and warm the version here; move the pointer only if it serves.
    /// </summary>
    public static async Task<Results<Ok<ModelVersionResponse>, ProblemHttpResult>> ActivateModelVersion(
        string name, int version, HttpContext context, ModelStore store, ModelActivation activation, ApiKeyRing keys,
        IOptions<ServingOptions> serving, CancellationToken cancellationToken, bool force = false)
    {
        if (store.Find(name, version) is not { } candidate)
        {
            return NotFound(name, version);
        }

        // The scope rule already asks admin for every POST under /models; this holds force to it whatever that rule becomes.
        if (force && keys.Any && !ApiKeyMiddleware.HasScope(context, ApiScope.Admin))
        {
            return TypedResults.Problem(new ProblemDetails
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "Forcing an activation needs the admin scope.",
                Detail = $"force=true overrides the promotion gate; send a key with the 'admin' scope, or activate {name} version {version} without force.",
                Extensions = { ["requiredScope"] = ApiScopes.Name(ApiScope.Admin) },
            });
        }

        var replaced = store.Active;
        var outcome = await activation.ActivateAsync(candidate, force, refuseWarnings: false, cancellationToken);
        var decision = outcome.Decision;
        switch (outcome.State)
        {
            case ActivationState.Refused:
                return Refused(name, version, decision!);
            case ActivationState.CannotLoad:
                var served = store.Active is { } a ? $"{a.Name} version {a.Version} stays active." : "Nothing was active; nothing is.";
                return TypedResults.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "The version cannot be loaded.",
                    detail: $"{name} version {version} was not activated: {outcome.Cause} {served}");
            case ActivationState.Gone:
                return NotFound(name, version);
        }

        if (force && !(replaced?.Name == name && replaced.Version == version))
        {
            var by = ApiKeyMiddleware.KeyOf(context)?.Name ?? "anonymous";
            ForcedActivations.Append(candidate.Directory, new ForcedActivation(
                DateTimeOffset.UtcNow, by, replaced is null ? null : $"{replaced.Name} version {replaced.Version}", decision?.Reasons ?? []));
        }

        return TypedResults.Ok(ModelVersionResponse.From(store.Find(name, version)!, serving.Value.Int8MarginPoints, decision));
    }

    /// <summary>The gate's 409: the reasons, both figures, the per-class changes, and how to override it.</summary>
    public static ProblemHttpResult Refused(string name, int version, PromotionDecision decision)
    {
        var active = decision.Active is { } a ? $"{a.Name} version {a.Version}" : "the active version";
        return TypedResults.Problem(new ProblemDetails
        {
            Status = StatusCodes.Status409Conflict,
            Title = "The promotion gate refused the version.",
            Detail = $"{name} version {version} was not activated; {active} stays served. {string.Join(" ", decision.Reasons.Select(r => r.Detail))} POST /models/{name}/versions/{version}/activate?force=true (admin scope) activates it anyway.",
            Extensions =
            {
                ["reasons"] = decision.Reasons,
                ["candidate"] = decision.Candidate,
                ["active"] = decision.Active,
                ["accuracyDelta"] = decision.AccuracyDelta,
                ["perClass"] = decision.PerClass,
                ["comparedOn"] = decision.ComparedOn,
                ["note"] = decision.Note,
                ["force"] = $"/models/{name}/versions/{version}/activate?force=true",
            },
        });
    }

    public static Results<NoContent, ProblemHttpResult> DeleteModelVersion(string name, int version, ModelStore store) =>
        store.Delete(name, version) switch
        {
            DeleteResult.Deleted => TypedResults.NoContent(),
            DeleteResult.Active => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The version is being served.", detail: $"{name} version {version} is active; activate another version before deleting it."),
            _ => NotFound(name, version),
        };

    private static ProblemHttpResult NotFound(string name, int version) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model version.", detail: $"There is no model '{name}' version {version}.");
}
