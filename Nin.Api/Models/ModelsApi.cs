using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Model.Checkpoints;

namespace Nin.Api.Models;

/// <summary>A model version as the API lists it.</summary>
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
    ModelMetadata Metadata)
{
    public static ModelVersionResponse From(ModelVersionInfo v) => new(
        v.Name, v.Version, v.Active, v.Metadata.CreatedAt, v.Metadata.Recipe?.Dataset, v.Metadata.ImageSize,
        v.Metadata.InputChannels, v.Metadata.ClassNames, v.Metadata.Metrics?.TestAccuracy, v.Metadata);
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
        var group = app.MapGroup("/models").WithTags("Models").AddEndpointFilter(CheckName).ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/", ListModels)
            .WithName("ListModels")
            .WithSummary("Stored models and their versions")
            .WithDescription("Every model name with its versions (newest first): created time, dataset, image size, classes, test accuracy, and which version `/predict` serves. `damaged` lists version folders that cannot be read (a garbled `model.json`, missing weights) with the reason; they are kept as they are.");

        group.MapGet("/{name}/versions/{version:int}", GetModelVersion)
            .WithName("GetModelVersion")
            .WithSummary("One model version with its full metadata")
            .WithDescription("The version's metadata: training recipe, preprocessing, classes, per-epoch history and test accuracy. 404 when there is no such version; 409 when its folder cannot be read (damaged).")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapPost("/{name}/versions/{version:int}/activate", ActivateModelVersion)
            .WithName("ActivateModelVersion")
            .WithSummary("Serve this version")
            .WithDescription("Makes the version the one `/predict` serves. Requests in flight finish on the old version; new ones use this one. No restart.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapDelete("/{name}/versions/{version:int}", DeleteModelVersion)
            .WithName("DeleteModelVersion")
            .WithSummary("Delete a version")
            .WithDescription("Refused (409) for the active version: activate another first.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    private static async ValueTask<object?> CheckName(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (context.HttpContext.Request.RouteValues.TryGetValue("name", out var value) && !ModelStore.IsValidName(value as string))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid model name.", detail: $"A model name must {ModelStore.NameRule}.");
        }

        return await next(context);
    }

    public static Ok<ModelsResponse> ListModels(ModelStore store)
    {
        var models = store.List()
            .GroupBy(v => v.Name)
            .Select(g => new ModelResponse(g.Key, g.OrderByDescending(v => v.Version).Select(ModelVersionResponse.From).ToArray()))
            .ToArray();
        return TypedResults.Ok(new ModelsResponse(store.Active, models, store.Damaged()));
    }

    public static Results<Ok<ModelVersionResponse>, ProblemHttpResult> GetModelVersion(string name, int version, ModelStore store) =>
        store.Find(name, version) is { } v ? TypedResults.Ok(ModelVersionResponse.From(v))
        : store.Damage(name, version) is { } damage ? TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The model version is damaged.", detail: $"{name} version {version} cannot be read: {damage} It is kept as it is.")
        : NotFound(name, version);

    public static Results<Ok<ModelVersionResponse>, ProblemHttpResult> ActivateModelVersion(string name, int version, ModelStore store) =>
        store.Activate(name, version) ? TypedResults.Ok(ModelVersionResponse.From(store.Find(name, version)!)) : NotFound(name, version);

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
