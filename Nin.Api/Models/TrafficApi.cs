using Microsoft.AspNetCore.Http.HttpResults;
using Nin.Api.Security;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;

namespace Nin.Api.Models;

/// <summary>A version's share in a split (a relative weight, above 0).</summary>
public sealed record TrafficRouteRequest(int Version, double Weight);

/// <summary>
/// The body of <c>PUT /models/{name}/traffic</c>: versions with their weights (e.g. 90 and 10), and optionally a shadow
/// version that receives a copy of every request and whose answers are only compared.
/// </summary>
public sealed record TrafficRequest(IReadOnlyList<TrafficRouteRequest> Routes, int? Shadow = null);

/// <summary>One version in a split: its weight, its share (0–1) and what it served on this replica since the process started.</summary>
public sealed record TrafficVersionResponse(int Version, double Weight, double Share, bool Active, long Requests, long Images, double? MeanLatencyMs);

/// <summary>One class (as the answering version labelled it): how many shadow copies and how many of them the shadow agreed with.</summary>
public sealed record ShadowClassAgreement(string Label, long Images, long Agreed, double? Rate);

/// <summary>The shadow version and its agreement with the answering versions on this replica since it became the shadow.</summary>
public sealed record ShadowResponse(int Version, long Images, long Agreed, double? Rate, long Skipped, long Failed, IReadOnlyList<ShadowClassAgreement> PerClass);

/// <summary>A model's traffic: the split (empty when none: its active or newest version takes every request) and the shadow.</summary>
public sealed record TrafficResponse(string Name, IReadOnlyList<TrafficVersionResponse> Routes, ShadowResponse? Shadow, DateTimeOffset? Updated, string KeyHeader);

/// <summary>
/// <c>/models/{name}/traffic</c>: canary and shadow traffic per model name. Requests that name no version follow the
/// split (<see cref="TrafficRouter"/>); every response names the version that answered.
/// </summary>
public static class TrafficApi
{
    public static IEndpointRouteBuilder MapTrafficApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models").WithTags("Models").WithRequiredScope().RequireValidModelName().ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/{name}/traffic", GetModelTraffic)
            .WithName("GetModelTraffic")
            .WithSummary("How a model's requests are split between its versions, and its shadow's agreement")
            .WithDescription("""
                The split set by PUT (each version's weight and share), with what each version served on this replica since it
                started (requests, images, mean latency), and the shadow version with its live agreement rate with the versions
                that answered, overall and per class (the answering version's label). `routes` is empty when the model has no
                split: its active (or newest) version takes every request. 404 for an unknown model.
                """)
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapPut("/{name}/traffic", SetModelTraffic)
            .WithName("SetModelTraffic")
            .WithSummary("Split a model's requests between versions (canary) and/or shadow one")
            .WithDescription($"""
                `routes`: versions with relative weights (e.g. `[{"{"}"version": 3, "weight": 90{"}"}, {"{"}"version": 4, "weight": 10{"}"}]`), 1–10
                distinct versions; `shadow`: a version (not in `routes`) that receives a copy of every request to this model name
                and whose answer is never returned, only compared. Requests that name the model (or, for the active model, no
                model) but no version follow the split: a stable hash of the `{TrafficRouter.KeyHeader}` header when sent (the
                same key, the same version, on every replica), else a random draw. Explicit versions are not affected. Stored in
                the shared store folder: every replica applies it within about a second. Needs an admin key when keys are
                configured. Each version is loaded and warmed on this replica first; 409 naming the cause when one cannot be
                loaded (the split is not changed). 404 for an unknown model or version.
                """)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        group.MapDelete("/{name}/traffic", DeleteModelTraffic)
            .WithName("DeleteModelTraffic")
            .WithSummary("End a model's split and shadow (roll back to its active version)")
            .WithDescription("Every request to the model goes to its active (or newest) version again. 404 for an unknown model; 204 also when it had no split.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        return app;
    }

    public static Results<Ok<TrafficResponse>, ProblemHttpResult> GetModelTraffic(string name, ModelStore store, TrafficRouter router, ServingMetrics metrics)
    {
        if (store.Latest(name) is null)
        {
            return NotFound(name);
        }

        return TypedResults.Ok(Describe(name, store, router, metrics));
    }

    public static async Task<Results<Ok<TrafficResponse>, ProblemHttpResult>> SetModelTraffic(
        string name, TrafficRequest request, ModelStore store, TrafficRouter router, ServingMetrics metrics, ModelRegistry registry, CancellationToken cancellationToken)
    {
        if (store.Latest(name) is null)
        {
            return NotFound(name);
        }

        var routes = request.Routes ?? [];
        if (routes.Count is < 1 or > 10)
        {
            return Bad("routes must hold 1 to 10 versions.");
        }

        if (routes.Select(r => r.Version).Distinct().Count() != routes.Count)
        {
            return Bad("Each version may appear once in routes.");
        }

        if (routes.FirstOrDefault(r => !double.IsFinite(r.Weight) || r.Weight <= 0 || r.Weight > 1_000_000) is { } zero)
        {
            return Bad($"Version {zero.Version}: a weight must be a number above 0 and at most 1,000,000; got {zero.Weight}.");
        }

        if (routes.Select(r => r.Version).Append(request.Shadow ?? 1).FirstOrDefault(v => v < 1, 1) is var invalid && invalid < 1)
        {
            return Bad($"Versions are positive integers; got {invalid}.");
        }

        if (request.Shadow is { } shadow && routes.Any(r => r.Version == shadow))
        {
            return Bad($"Version {shadow} cannot both take requests and shadow them.");
        }

        foreach (var version in routes.Select(r => r.Version).Append(request.Shadow ?? 0).Where(v => v != 0))
        {
            if (store.Find(name, version) is null)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown version.", detail: $"Model '{name}' has no version {version}.");
            }
        }

        // Every version of the split is loaded and warmed here before it takes traffic (as an activation does); one that
        // cannot be loaded is named and nothing changes.
        foreach (var version in routes.Select(r => r.Version).Append(request.Shadow ?? 0).Where(v => v != 0))
        {
            try
            {
                var loaded = await registry.AcquireAsync(name, version, cancellationToken);
                loaded?.Release();
            }
            catch (ModelLoadException ex)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "A version of the split cannot be loaded.",
                    detail: $"{name} version {version} cannot be loaded on this replica: {ex.Cause} The split was not changed.");
            }
        }

        TrafficSplit.Write(store.Root, name, new TrafficSplit([.. routes.Select(r => new TrafficRoute(r.Version, r.Weight))], request.Shadow, DateTimeOffset.UtcNow));
        router.Invalidate(name);
        return TypedResults.Ok(Describe(name, store, router, metrics));
    }

    public static Results<NoContent, ProblemHttpResult> DeleteModelTraffic(string name, ModelStore store, TrafficRouter router)
    {
        if (store.Latest(name) is null)
        {
            return NotFound(name);
        }

        TrafficSplit.Delete(store.Root, name);
        router.Invalidate(name);
        return TypedResults.NoContent();
    }

    private static TrafficResponse Describe(string name, ModelStore store, TrafficRouter router, ServingMetrics metrics)
    {
        var split = router.Split(name);
        var active = store.Active;
        var total = split?.Routes.Sum(r => r.Weight) ?? 0;
        var routes = (split?.Routes ?? []).Select(r =>
        {
            var s = metrics.Statistics(name, r.Version);
            return new TrafficVersionResponse(r.Version, r.Weight, r.Weight / total, active == new ActiveModel(name, r.Version),
                s.SuccessCount, s.InferenceCount, s.SuccessCount > 0 ? s.SuccessNs / 1e6 / s.SuccessCount : null);
        }).ToList();

        ShadowResponse? shadow = null;
        if (split?.Shadow is { } version)
        {
            var stats = router.Shadow(name) is { } st && st.ShadowVersion == version ? st : null;
            var classes = store.Find(name, version)?.Metadata.ClassNames ?? [];
            var perClass = stats?.PerClass ?? [];
            shadow = new ShadowResponse(version, stats?.Images ?? 0, stats?.Agreed ?? 0, stats is { Images: > 0 } ? (double)stats.Agreed / stats.Images : null,
                stats?.Skipped ?? 0, stats?.Failed ?? 0,
                [.. perClass.Select((c, i) => new ShadowClassAgreement(i < classes.Count ? classes[i] : i.ToString(System.Globalization.CultureInfo.InvariantCulture), c.Images, c.Agreed, c.Images > 0 ? (double)c.Agreed / c.Images : null))]);
        }

        return new TrafficResponse(name, routes, shadow, split?.Updated, TrafficRouter.KeyHeader);
    }

    private static ProblemHttpResult NotFound(string name) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model.", detail: $"There is no model '{name}'.");

    private static ProblemHttpResult Bad(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid traffic split.", detail: detail);
}
