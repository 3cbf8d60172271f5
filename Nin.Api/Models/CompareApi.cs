using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;

namespace Nin.Api.Models;

/// <summary>One version's side of a comparison: its evaluation's dataset, test images, accuracy and confusion matrix (rows = true class, columns = predicted).</summary>
public sealed record ComparedVersionResponse(
    int Version, bool Active, string? Dataset, int TestImages, double Accuracy, DateTimeOffset EvaluatedAt, IReadOnlyList<IReadOnlyList<int>> Confusion);

/// <summary>A test image whose prediction changed: its index in the test split, its true label, what a and b said, and its thumbnail (a PNG URL).</summary>
public sealed record ChangedSample(int Index, string TrueLabel, string PredictedA, string PredictedB, string Image);

/// <summary>Test images of one kind of change: how many there are in all, and the first <c>limit</c> in index order.</summary>
public sealed record ChangedSamples(int Total, IReadOnlyList<ChangedSample> Items);

/// <summary>
/// Two versions of a model on the same test split: both evaluations, the accuracy change and each class's recall and
/// precision change (b − a), and the test images b got right that a got wrong (<c>fixed</c>) and the reverse (<c>broken</c>).
/// </summary>
public sealed record VersionComparisonResponse(
    string Name,
    ComparedVersionResponse A,
    ComparedVersionResponse B,
    double AccuracyDelta,
    IReadOnlyList<string> Classes,
    IReadOnlyList<ClassDelta> PerClass,
    ChangedSamples Fixed,
    ChangedSamples Broken,
    int ChangedWrong,
    int Limit);

/// <summary>
/// <c>GET /models/{name}/compare?a=&amp;b=</c>: what changed between two evaluated versions, from the evaluations and
/// per-image predictions stored beside them (nothing is evaluated here; <see cref="VersionComparison"/> does the sums).
/// </summary>
public static class CompareApi
{
    public const int DefaultItems = 50;

    public const int MaxItems = 500;

    public static IEndpointRouteBuilder MapCompareApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models").WithTags("Models").WithRequiredScope().RequireValidModelName().ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapGet("/{name}/compare", CompareModelVersions)
            .WithName("CompareModelVersions")
            .WithSummary("What changed between two versions on the same test split")
            .WithDescription($$"""
                Version `a` (the baseline) against version `b` (the candidate), from the evaluations and per-image predictions
                stored beside them: each one's accuracy, dataset, test images and confusion matrix; `accuracyDelta` and, per
                class, recall and precision of each with the change (always b − a); and the test images whose prediction changed:
                `fixed` (wrong in a, right in b) and `broken` (right in a, wrong in b), each with its test-split `index`, true
                label, both predicted labels and `image`, the URL of its PNG (GET /models/{name}/versions/{b}/samples/{index},
                which needs a `predict` key for a non-active version when API keys are in force). `total` counts them all; `items`
                are the first `limit` (0–{{MaxItems}}, default {{DefaultItems}}) in index order. `changedWrong` counts images wrong in both
                with another label. `a` may equal `b` (every change zero).
                The versions must have been evaluated on one test split: the same dataset, the same class names in the same
                order, as many test images and the same true label at each. Otherwise 409 with `differs` naming what differs
                (`dataset`, `classes`, `testImages` or `labels`): comparing on the candidate's split would mean evaluating `a`
                on a dataset it was not trained on, which a GET does not start. 409 too when a version has no evaluation yet
                (its `evaluate` names the POST that makes one) or is damaged. 404 for an unknown version.
                """)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return app;
    }

    public static Results<Ok<VersionComparisonResponse>, ProblemHttpResult> CompareModelVersions(string name, int a, int b, ModelStore store, int limit = DefaultItems)
    {
        if (a < 1 || b < 1)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid version.", detail: "a and b must be version numbers (1 or more).");
        }

        if (limit is < 0 or > MaxItems)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid limit.", detail: $"limit must be between 0 and {MaxItems}.");
        }

        var sides = new List<(ModelVersionInfo Info, ModelEvaluation Evaluation, TestPredictions Predictions)>(2);
        foreach (var version in a == b ? new[] { a } : new[] { a, b })
        {
            if (store.Find(name, version) is not { } info)
            {
                return store.Damage(name, version) is { } damage
                    ? TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The model version is damaged.", detail: $"{name} version {version} cannot be read: {damage}")
                    : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model version.", detail: $"There is no model '{name}' version {version}.");
            }

            if (EvaluationFiles.ReadEvaluation(info.Directory) is not { } evaluation
                || EvaluationFiles.ReadPredictions(info.Directory) is not { } predictions
                || !predictions.IsConsistent(info.Metadata.ClassNames.Count))
            {
                return NotEvaluated(name, version, EvaluationStatus.Read(info.Directory));
            }

            sides.Add((info, evaluation, predictions));
        }

        var (infoA, evaluationA, predictionsA) = sides[0];
        var (infoB, evaluationB, predictionsB) = sides[^1];
        var left = new ComparedVersion(a, evaluationA.Dataset ?? infoA.Metadata.Recipe?.Dataset, infoA.Metadata.ClassNames, predictionsA);
        var right = new ComparedVersion(b, evaluationB.Dataset ?? infoB.Metadata.Recipe?.Dataset, infoB.Metadata.ClassNames, predictionsB);
        if (VersionComparison.Conflict(left, right) is { } conflict)
        {
            var problem = new ProblemDetails
            {
                Status = StatusCodes.Status409Conflict,
                Title = "The versions were not evaluated on the same test split.",
                Detail = $"{name} versions {a} and {b} cannot be compared image by image: {conflict.Detail}",
                Extensions = { ["differs"] = conflict.Differs },
            };
            return TypedResults.Problem(problem);
        }

        var comparison = VersionComparison.Compare(left, right);
        var classes = comparison.Classes;
        ChangedSamples Changed(IReadOnlyList<ChangedPrediction> changes) => new(changes.Count, [.. changes.Take(limit).Select(c => new ChangedSample(
            c.Index, classes[c.TrueLabel], classes[c.PredictedA], classes[c.PredictedB],
            string.Create(CultureInfo.InvariantCulture, $"/models/{name}/versions/{b}/samples/{c.Index}")))]);

        return TypedResults.Ok(new VersionComparisonResponse(
            name,
            Side(infoA, evaluationA, comparison.A),
            Side(infoB, evaluationB, comparison.B),
            comparison.AccuracyDelta,
            classes,
            comparison.PerClass,
            Changed(comparison.Fixed),
            Changed(comparison.Broken),
            comparison.ChangedWrong,
            limit));
    }

    private static ComparedVersionResponse Side(ModelVersionInfo info, ModelEvaluation stored, ModelEvaluation computed) =>
        new(info.Version, info.Active, computed.Dataset, computed.TestImages, computed.Accuracy, stored.EvaluatedAt, computed.Confusion);

    private static ProblemHttpResult NotEvaluated(string name, int version, EvaluationStatus? status)
    {
        var evaluate = $"/models/{name}/versions/{version}/evaluate";
        var detail = status?.State switch
        {
            EvaluationStatus.Queued or EvaluationStatus.Running => $"{name} version {version}'s evaluation is {status.State}; compare again once GET /models/{name}/versions/{version}/evaluation has it.",
            EvaluationStatus.Failed => $"{name} version {version}'s evaluation failed: {status.Error} POST {evaluate} to try again.",
            _ => $"{name} version {version} has no evaluation yet: POST {evaluate} makes one (a job; nothing is evaluated by a GET).",
        };
        return TypedResults.Problem(new ProblemDetails
        {
            Status = StatusCodes.Status409Conflict,
            Title = "A version has no evaluation.",
            Detail = detail,
            Extensions = { ["version"] = version, ["evaluation"] = status?.State ?? "none", ["evaluate"] = evaluate },
        });
    }
}
