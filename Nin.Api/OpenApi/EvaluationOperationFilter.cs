using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>Examples and query parameter text for the evaluation routes (<c>Nin.Api.Models.EvaluationApi</c>).</summary>
internal sealed class EvaluationOperationFilter : IOperationFilter
{
    private static readonly Dictionary<string, string> QueryDescriptions = new(StringComparer.Ordinal)
    {
        ["onlyWrong"] = "Only misclassified test images (default false: mistakes first, then the rest).",
        ["limit"] = "How many images to return, 1–200 (default 24).",
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
            if (string.IsNullOrEmpty(parameter.Description) && QueryDescriptions.TryGetValue(parameter.Name ?? "", out var text))
            {
                parameter.Description = text;
            }
        }

        if (operation.Responses?.TryGetValue(status, out var response) == true && response.Content?.TryGetValue("application/json", out var json) == true && json is OpenApiMediaType media)
        {
            media.Example = JsonNode.Parse(example!);
        }
    }
}
