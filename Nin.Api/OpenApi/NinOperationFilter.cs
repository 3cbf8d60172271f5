using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Mvc.ModelBinding;
using Microsoft.OpenApi;
using Nin.Api.Models;
using Nin.Model.Checkpoints;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// What every operation shares: route parameters described with the server's rules (the model-name pattern) and an
/// example, the 500 of the exception handler, the 400 and 415 with which the framework refuses a JSON body or a query
/// value it cannot bind, and request examples.
/// </summary>
internal sealed class NinOperationFilter : IOperationFilter
{
    private static readonly Dictionary<string, (string Description, JsonNode Example)> RouteParameters = new(StringComparer.OrdinalIgnoreCase)
    {
        ["jobId"] = ("The training job's id, as returned by `POST /train`.", JsonValue.Create("3f2a9c1b7d4e")),
        ["name"] = ("The model's name (see `GET /models`): 1–64 of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.", JsonValue.Create("fashion-mnist")),
        ["version"] = ("The model version, a positive integer.", JsonValue.Create(1)),
        ["id"] = ("An uploaded dataset's id (`u-…`) or a built-in dataset's name.", JsonValue.Create("fashion-mnist")),
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (var parameter in (operation.Parameters ?? []).OfType<OpenApiParameter>())
        {
            if (parameter.In == ParameterLocation.Path && RouteParameters.TryGetValue(parameter.Name ?? "", out var known))
            {
                parameter.Description ??= known.Description;
                parameter.Example ??= known.Example;
            }

            if (parameter.Schema is OpenApiSchema schema)
            {
                Constrain(operation.OperationId, parameter, schema);
            }
        }

        operation.Responses ??= [];
        if (!operation.Responses.ContainsKey("500"))
        {
            ErrorResponses.AddError(operation, context, StatusCodes.Status500InternalServerError, "Internal server error (an unexpected fault).");
        }

        // The framework binds these itself: a body that is not JSON is a 415, a malformed one or an unknown field a 400
        // (naming the field), and so is a query value of the wrong type.
        var parameters = context.ApiDescription.ParameterDescriptions;
        if (parameters.Any(p => p.Source == BindingSource.Body))
        {
            ErrorResponses.AddProblem(operation, context, StatusCodes.Status415UnsupportedMediaType, "The body's Content-Type is not one this operation takes.");
            EnsureBadRequest(operation, context, "The body is not valid JSON of this shape: malformed, a field of the wrong type, or a field this request does not have (each named).");
        }

        if (parameters.Any(p => p.Source == BindingSource.Query && p.Type is { } t && t != typeof(string)))
        {
            EnsureBadRequest(operation, context, "A query value that is not of its parameter's type.");
        }

        DescribeRawResponses(operation, context);

        if (operation.OperationId == "StartTraining"
            && operation.RequestBody?.Content?.TryGetValue("application/json", out var train) == true && train is OpenApiMediaType trainMedia)
        {
            trainMedia.Example = JsonNode.Parse("""
                { "dataset": "fashion-mnist", "recipe": "robust", "epochs": 2, "batchSize": 64, "learningRate": 0.1, "imageSize": 96, "device": "auto", "modelName": "fm-quick", "maxTrainImages": 2000, "maxTestImages": 500 }
                """);
        }
    }

    /// <summary>
    /// A response declared with a content type but no .NET type (a file download) gets that content type with the schema a
    /// raw body has: a string, binary unless it is text.
    /// </summary>
    private static void DescribeRawResponses(OpenApiOperation operation, OperationFilterContext context)
    {
        var declared = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<Microsoft.AspNetCore.Http.Metadata.IProducesResponseTypeMetadata>()
            .Where(r => (r.Type is null || r.Type == typeof(void)) && r.ContentTypes.Any());
        foreach (var raw in declared)
        {
            var code = raw.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (operation.Responses?.TryGetValue(code, out var found) != true || found is not OpenApiResponse response)
            {
                continue;
            }

            response.Content ??= new Dictionary<string, IOpenApiMediaType>();
            foreach (var type in raw.ContentTypes)
            {
                var text = type.StartsWith("text/", StringComparison.OrdinalIgnoreCase);
                response.Content.TryAdd(type, new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = text ? null : "binary" } });
            }
        }
    }

    private static void EnsureBadRequest(OpenApiOperation operation, OperationFilterContext context, string description)
    {
        if (!operation.Responses!.ContainsKey("400"))
        {
            ErrorResponses.AddProblem(operation, context, StatusCodes.Status400BadRequest, description);
        }
    }

    /// <summary>The rules the handlers enforce on route and query values, stated in the parameter's schema.</summary>
    private static void Constrain(string? operationId, OpenApiParameter parameter, OpenApiSchema schema)
    {
        switch (parameter.Name)
        {
            case "name" when parameter.In == ParameterLocation.Path:
            case "model" when parameter.In == ParameterLocation.Query:
                schema.Pattern = ModelStore.NamePatternText;
                schema.MaxLength = 64;
                break;
            case "version" when parameter.In == ParameterLocation.Path && schema.Type == JsonSchemaType.Integer:
                schema.Minimum = "1";
                break;
            case "version" when parameter.In == ParameterLocation.Path:
                schema.Pattern = "^[0-9]+$"; // KServe names versions as strings
                break;
            case "format" when operationId == "ExportModelVersion":
                schema.Enum = [.. ModelTransferApi.ExportFormats.Select(f => (JsonNode)JsonValue.Create(f))];
                schema.Default = JsonValue.Create(ModelTransferApi.ExportFormats[0]);
                parameter.Description ??= "`onnx` (default), `safetensors` or `pytorch` (`pt` and `pth` are the same as `pytorch`).";
                break;
            case "limit" when operationId == "GetTestSamples":
                schema.Minimum = "1";
                schema.Maximum = EvaluationApi.MaxSamples.ToString(System.Globalization.CultureInfo.InvariantCulture);
                schema.Default = JsonValue.Create(EvaluationApi.DefaultSamples);
                break;
            case "limit" when operationId == "CompareModelVersions":
                schema.Minimum = "0";
                schema.Maximum = CompareApi.MaxItems.ToString(System.Globalization.CultureInfo.InvariantCulture);
                schema.Default = JsonValue.Create(CompareApi.DefaultItems);
                break;
            case "a" or "b" when operationId == "CompareModelVersions":
                schema.Minimum = "1";
                parameter.Required = true;
                break;
            case "index" when operationId == "GetTestSampleImage":
                schema.Minimum = "0";
                break;
        }
    }
}
