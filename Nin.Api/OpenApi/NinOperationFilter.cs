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
        ["sweepId"] = ("The sweep's id, as returned by `POST /sweeps`.", JsonValue.Create("7c1e0b9a2d4f")),
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
        if (operation.OperationId is "ListTrainingJobs" or "GetSweep")
        {
            DescribeRunsTable(operation, operation.OperationId == "GetSweep" ? "The sweep (JSON), or its trials' runs table (`format=csv`)." : "The jobs (JSON), or the runs table (`format=csv`).");
        }

        if (operation.OperationId == "StartSweep"
            && operation.RequestBody?.Content?.TryGetValue("application/json", out var sweep) == true && sweep is OpenApiMediaType sweepMedia)
        {
            sweepMedia.Example = JsonNode.Parse("""
                { "base": { "dataset": "fashion-mnist", "recipe": "robust", "epochs": 3, "imageSize": 67, "modelName": "fm-sweep", "maxTrainImages": 2000, "maxTestImages": 500 }, "method": "grid", "space": { "learningRate": { "values": [0.02, 0.1, 0.5] }, "weightDecay": { "values": [0, 0.0005] } }, "metric": "testAccuracy", "earlyStopping": { "rule": "median", "graceEpochs": 1, "minTrials": 2 }, "activate": false }
                """);
        }

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

    /// <summary>GET /train's other answer: the runs table (<see cref="Training.RunsCsv"/>), with an example made by the same code.</summary>
    private static void DescribeRunsTable(OpenApiOperation operation, string description)
    {
        if (operation.Responses?.TryGetValue("200", out var found) != true || found is not OpenApiResponse ok)
        {
            return;
        }

        var settings = new Training.TrainSettings("fashion-mnist", 2, 64, 0.1, 0.9, 0.0001, 96, 0, "auto", "fm-quick", 2000, 500, false, "robust", "nin-bn", "one-cycle", 0.1, true);
        var created = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var example = new Training.JobSnapshot(
            "3f2a9c1b7d4e", Training.JobStatus.Succeeded, settings, "cpu", new Training.JobProgress(2, 32, 32),
            [new EpochMetrics(1, 1.2034, 0.5625, 0.701, 410.5, 4.87), new EpochMetrics(2, 0.7311, 0.7395, 0.766, 415.2, 4.82)],
            "fm-quick", 3, null, created, created.AddSeconds(2), created.AddSeconds(14.5), Warnings: [], Worker: "api-0:1:3c9e", Revision: 7);
        ok.Description = description;
        ok.Content ??= new Dictionary<string, IOpenApiMediaType>();
        ok.Content[Training.RunsCsv.MediaType] = new OpenApiMediaType
        {
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, Description = "RFC 4180 CSV, UTF-8, CRLF line ends; columns: " + string.Join(", ", Training.RunsCsv.Header) + "." },
            Example = JsonValue.Create(Training.RunsCsv.Table([example])),
        };
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
            case "format" when operationId is "ListTrainingJobs" or "GetSweep":
                schema.Enum = [.. Training.RunsCsv.Formats.Select(f => (JsonNode)JsonValue.Create(f))];
                schema.Default = JsonValue.Create(Training.RunsCsv.Formats[0]);
                parameter.Description ??= "`json` (the default; without `format`, `Accept: text/csv` picks `csv`) or `csv`: the runs table, every matching run unless `limit` or `cursor` is given.";
                break;
            case "limit" when operationId == "ListSweeps":
                schema.Minimum = "1";
                schema.Maximum = Training.JobQuery.MaxLimit.ToString(System.Globalization.CultureInfo.InvariantCulture);
                schema.Default = JsonValue.Create(Sweeps.SweepsApi.DefaultLimit);
                parameter.Description ??= "How many sweeps to return, newest first (default 50).";
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
