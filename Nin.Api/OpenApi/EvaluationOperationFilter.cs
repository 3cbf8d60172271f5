using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// Examples and parameter text for the evaluation routes (<c>Nin.Api.Models.EvaluationApi</c>), the comparison
/// (<c>Nin.Api.Models.CompareApi</c>) and the promotion gate's side of activation (<c>force</c>, its 409).
/// </summary>
internal sealed class EvaluationOperationFilter : IOperationFilter
{
    private static readonly Dictionary<(string Operation, string Parameter), string> ParameterDescriptions = new()
    {
        [("GetTestSamples", "onlyWrong")] = "Only misclassified test images (default false: mistakes first, then the rest).",
        [("GetTestSamples", "limit")] = "How many images to return, 1–200 (default 24).",
        [("GetTestSampleImage", "index")] = "The test image's 0-based index in the version's test split (the `index` of .../samples and of a comparison).",
        [("CompareModelVersions", "a")] = "The baseline version.",
        [("CompareModelVersions", "b")] = "The candidate version (may equal `a`). Every change is b − a; thumbnails link to its test images.",
        [("CompareModelVersions", "limit")] = "How many `fixed` and how many `broken` images to list, 0–500 (default 50); `total` always counts them all.",
        [("ActivateModelVersion", "force")] = "Activate even if the promotion gate refuses the version (default false); needs the `admin` scope when API keys are in force, and is recorded on the version (`forcedActivations`).",
    };

    /// <summary>The promotion gate's refusal, as POST .../activate answers it.</summary>
    private static readonly Dictionary<string, (string Summary, string Json)[]> ActivateProblems = new(StringComparer.Ordinal)
    {
        ["409"] =
        [
            ("worse than the active version", """
                {
                  "title": "The promotion gate refused the version.", "status": 409,
                  "detail": "fashion-mnist version 2 was not activated; fashion-mnist version 1 stays served. Its accuracy 84.20 % is 5.35 points below the active version's 89.55 % on the same 3000 test images; at most 1 points are allowed. POST /models/fashion-mnist/versions/2/activate?force=true (admin scope) activates it anyway.",
                  "reasons": [ { "code": "accuracy", "detail": "Its accuracy 84.20 % is 5.35 points below the active version's 89.55 % on the same 3000 test images; at most 1 points are allowed." } ],
                  "candidate": { "name": "fashion-mnist", "version": 2, "accuracy": 0.842, "classesAboveFloor": 3, "testImages": 3000 },
                  "active": { "name": "fashion-mnist", "version": 1, "accuracy": 0.8955, "classesAboveFloor": 3, "testImages": 3000 },
                  "accuracyDelta": -0.0535,
                  "perClass": [
                    { "name": "T-shirt/top", "support": 1000, "recallA": 0.912, "recallB": 0.85, "recallDelta": -0.062, "precisionA": 0.9249, "precisionB": 0.88, "precisionDelta": -0.0449 }
                  ],
                  "comparedOn": "same-split", "note": null,
                  "force": "/models/fashion-mnist/versions/2/activate?force=true"
                }
                """),
            ("did not learn", """
                {
                  "title": "The promotion gate refused the version.", "status": 409,
                  "detail": "stuck version 3 was not activated; fashion-mnist version 1 stays served. stuck version 3 was flagged when it was trained: did not learn: test accuracy 0.100 is at chance (1/10 = 0.100); try the robust recipe or a lower learning rate. … POST /models/stuck/versions/3/activate?force=true (admin scope) activates it anyway.",
                  "reasons": [
                    { "code": "did-not-learn", "detail": "stuck version 3 was flagged when it was trained: did not learn: test accuracy 0.100 is at chance (1/10 = 0.100); try the robust recipe or a lower learning rate." },
                    { "code": "accuracy", "detail": "Its accuracy 10.00 % is 79.60 points below the active version's 89.60 % on the same 500 test images; at most 1 points are allowed." },
                    { "code": "recall-floor", "detail": "1 of its classes have a recall of at least 0.5, against 10 of the active version's; below it now: 'Trouser' 0.96 → 0.00, …" }
                  ],
                  "candidate": { "name": "stuck", "version": 3, "accuracy": 0.1, "classesAboveFloor": 1, "testImages": 500 },
                  "active": { "name": "fashion-mnist", "version": 1, "accuracy": 0.896, "classesAboveFloor": 10, "testImages": 500 },
                  "accuracyDelta": -0.796,
                  "perClass": [
                    { "name": "T-shirt/top", "support": 50, "recallA": 0.86, "recallB": 1, "recallDelta": 0.14, "precisionA": 0.8431, "precisionB": 0.1, "precisionDelta": -0.7431 }
                  ],
                  "comparedOn": "candidate-split",
                  "note": "The versions were evaluated on different test splits (Version 1 was evaluated on 10000 test images and version 3 on 500.): fashion-mnist version 1 was measured on the candidate's test split ('fashion-mnist', 500 images) for this comparison.",
                  "force": "/models/stuck/versions/3/activate?force=true"
                }
                """),
        ],
    };

    /// <summary>Error examples of the comparison, by status: its 409s tell what keeps two versions apart.</summary>
    private static readonly Dictionary<string, (string Summary, string Json)[]> CompareProblems = new(StringComparer.Ordinal)
    {
        ["400"] =
        [
            ("b missing", """{ "title": "The request could not be read.", "status": 400, "detail": "'b' is required." }"""),
            ("limit out of range", """{ "title": "Invalid limit.", "status": 400, "detail": "limit must be between 0 and 500." }"""),
        ],
        ["404"] =
        [
            ("unknown version", """{ "title": "Unknown model version.", "status": 404, "detail": "There is no model 'fashion-mnist' version 9." }"""),
        ],
        ["409"] =
        [
            ("not evaluated", """
                { "title": "A version has no evaluation.", "status": 409, "detail": "fashion-mnist version 2 has no evaluation yet: POST /models/fashion-mnist/versions/2/evaluate makes one (a job; nothing is evaluated by a GET).", "version": 2, "evaluation": "none", "evaluate": "/models/fashion-mnist/versions/2/evaluate" }
                """),
            ("another test split", """
                { "title": "The versions were not evaluated on the same test split.", "status": 409, "detail": "fashion-mnist versions 1 and 2 cannot be compared image by image: Version 1 was evaluated on 10000 test images and version 2 on 500.", "differs": "testImages" }
                """),
        ],
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var (status, example) = operation.OperationId switch
        {
            "EvaluateModelVersion" => ("202", """
                { "name": "fashion-mnist", "version": 1, "hangfireJobId": "7", "location": "/models/fashion-mnist/versions/1/evaluation" }
                """),
            "GetModelEvaluation" => ("200", """
                {
                  "classes": ["T-shirt/top", "Trouser", "Pullover"],
                  "confusion": [[912, 3, 85], [4, 990, 6], [70, 2, 928]],
                  "perClass": [
                    { "name": "T-shirt/top", "precision": 0.9212, "recall": 0.912, "support": 1000 },
                    { "name": "Trouser", "precision": 0.995, "recall": 0.99, "support": 1000 },
                    { "name": "Pullover", "precision": 0.9104, "recall": 0.928, "support": 1000 }
                  ],
                  "accuracy": 0.9433,
                  "testImages": 3000,
                  "dataset": "fashion-mnist",
                  "evaluatedAt": "2026-11-29T12:00:00+00:00"
                }
                """),
            "CompareModelVersions" => ("200", """
                {
                  "name": "fashion-mnist",
                  "a": { "version": 1, "active": true, "dataset": "fashion-mnist", "testImages": 3000, "accuracy": 0.9433, "evaluatedAt": "2026-11-29T12:00:00+00:00", "confusion": [[912, 3, 85], [4, 990, 6], [70, 2, 928]] },
                  "b": { "version": 2, "active": false, "dataset": "fashion-mnist", "testImages": 3000, "accuracy": 0.9467, "evaluatedAt": "2026-12-02T09:30:00+00:00", "confusion": [[930, 2, 68], [3, 992, 5], [79, 3, 918]] },
                  "accuracyDelta": 0.0033,
                  "classes": ["T-shirt/top", "Trouser", "Pullover"],
                  "perClass": [
                    { "name": "T-shirt/top", "support": 1000, "recallA": 0.912, "recallB": 0.93, "recallDelta": 0.018, "precisionA": 0.9249, "precisionB": 0.919, "precisionDelta": -0.0059 },
                    { "name": "Trouser", "support": 1000, "recallA": 0.99, "recallB": 0.992, "recallDelta": 0.002, "precisionA": 0.995, "precisionB": 0.995, "precisionDelta": 0 },
                    { "name": "Pullover", "support": 1000, "recallA": 0.928, "recallB": 0.918, "recallDelta": -0.01, "precisionA": 0.9107, "precisionB": 0.9263, "precisionDelta": 0.0156 }
                  ],
                  "fixed": { "total": 41, "items": [ { "index": 17, "trueLabel": "T-shirt/top", "predictedA": "Pullover", "predictedB": "T-shirt/top", "image": "/models/fashion-mnist/versions/2/samples/17" } ] },
                  "broken": { "total": 31, "items": [ { "index": 230, "trueLabel": "Pullover", "predictedA": "Pullover", "predictedB": "T-shirt/top", "image": "/models/fashion-mnist/versions/2/samples/230" } ] },
                  "changedWrong": 6,
                  "limit": 1
                }
                """),
            "GetTestSampleImage" => ("200", null),
            "ActivateModelVersion" => ("200", null),
            "GetTestSamples" => ("200", """
                {
                  "name": "fashion-mnist", "version": 1, "testImages": 10000, "misclassified": 1045,
                  "items": [
                    { "index": 17, "trueLabel": "Shirt", "predictedLabel": "T-shirt/top", "probability": 0.98, "correct": false, "image": "data:image/png;base64,iVBORw0KGgo..." }
                  ]
                }
                """),
            _ => (null, null),
        };

        if (status is null)
        {
            return;
        }

        foreach (var parameter in (operation.Parameters ?? []).OfType<OpenApiParameter>())
        {
            if (string.IsNullOrEmpty(parameter.Description) && ParameterDescriptions.TryGetValue((operation.OperationId!, parameter.Name ?? ""), out var text))
            {
                parameter.Description = text;
            }
        }

        if (example is not null && operation.Responses?.TryGetValue(status, out var response) == true && response.Content?.TryGetValue("application/json", out var json) == true && json is OpenApiMediaType media)
        {
            media.Example = JsonNode.Parse(example);
        }

        var problemExamples = operation.OperationId switch
        {
            "CompareModelVersions" => CompareProblems,
            "ActivateModelVersion" => ActivateProblems,
            _ => null,
        };
        if (problemExamples is not null)
        {
            foreach (var (code, problems) in problemExamples)
            {
                if (operation.Responses?.TryGetValue(code, out var error) == true && error.Content?.TryGetValue(ErrorResponses.ProblemJson, out var problemJson) == true && problemJson is OpenApiMediaType problemMedia)
                {
                    problemMedia.Examples = problems.ToDictionary(p => p.Summary.Replace(' ', '-'), p => (IOpenApiExample)new OpenApiExample { Summary = p.Summary, Value = JsonNode.Parse(p.Json) });
                }
            }
        }
    }
}
