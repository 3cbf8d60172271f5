using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using Nin.Api.Serving;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// What every operation shares: route parameters described, the 500 ProblemDetails of the exception handler, and
/// request examples. The KServe infer route reads its JSON body itself, so its body is described here too.
/// </summary>
internal sealed class NinOperationFilter : IOperationFilter
{
    private static readonly Dictionary<string, string> ParameterDescriptions = new(StringComparer.OrdinalIgnoreCase)
    {
        ["jobId"] = "The training job's id, as returned by `POST /train`.",
        ["name"] = "The model's name (see `GET /models`).",
        ["version"] = "The model version, a positive integer.",
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (var parameter in (operation.Parameters ?? []).OfType<OpenApiParameter>())
        {
            if (string.IsNullOrEmpty(parameter.Description) && ParameterDescriptions.TryGetValue(parameter.Name ?? "", out var text))
            {
                parameter.Description = text;
            }
        }

        var isKServe = context.ApiDescription.RelativePath?.StartsWith("v2/", StringComparison.Ordinal) == true;
        operation.Responses ??= [];
        if (!operation.Responses.ContainsKey("500"))
        {
            operation.Responses["500"] = isKServe
                ? ErrorResponse(context, typeof(V2Error), "application/json", "Internal server error: `{ \"error\": \"...\" }`.")
                : ErrorResponse(context, typeof(ProblemDetails), "application/problem+json", "Internal server error (an unexpected fault), as ProblemDetails.");
        }

        switch (operation.OperationId)
        {
            case "StartTraining":
                if (operation.RequestBody?.Content?.TryGetValue("application/json", out var train) == true && train is OpenApiMediaType trainMedia)
                {
                    trainMedia.Example = JsonNode.Parse("""
                        { "dataset": "fashion-mnist", "recipe": "robust", "epochs": 2, "batchSize": 64, "learningRate": 0.1, "imageSize": 96, "device": "auto", "modelName": "fm-quick", "maxTrainImages": 2000, "maxTestImages": 500 }
                        """);
                }

                break;
            case "V2ModelInfer":
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Description = "An Open Inference Protocol request with exactly one input: `input` (FP32 [N, C, S, S]) or `images` (BYTES [N], base64 image files).",
                    Content = new Dictionary<string, IOpenApiMediaType>
                    {
                        ["application/json"] = new OpenApiMediaType
                        {
                            Schema = context.SchemaGenerator.GenerateSchema(typeof(V2InferRequest), context.SchemaRepository),
                            Example = JsonNode.Parse("""
                                { "id": "1", "inputs": [ { "name": "images", "shape": [1], "datatype": "BYTES", "data": ["iVBORw0KGgo...base64 PNG..."] } ] }
                                """),
                        },
                    },
                };
                break;
        }
    }

    private static OpenApiResponse ErrorResponse(OperationFilterContext context, Type type, string contentType, string description) => new()
    {
        Description = description,
        Content = new Dictionary<string, IOpenApiMediaType>
        {
            [contentType] = new OpenApiMediaType { Schema = context.SchemaGenerator.GenerateSchema(type, context.SchemaRepository) },
        },
    };
}
