using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Nin.Api.Datasets;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// POST /datasets reads its multipart form itself (so it can bound the upload and answer its own 415), which leaves
/// ApiExplorer without a request body: the form is described here, with this service's limits, so Swagger UI and
/// generated clients can upload. GET /datasets/{id} answers an upload or a built-in dataset: one of the two schemas.
/// </summary>
internal sealed class UploadOperationFilter(IOptions<DatasetUploadOptions> options) : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        switch (operation.OperationId)
        {
            case "UploadDataset":
                Upload(operation);
                break;
            case "GetDataset" when operation.Responses?.TryGetValue("200", out var ok) == true && ok?.Content?.TryGetValue("application/json", out var json) == true && json is OpenApiMediaType media:
                media.Schema = new OpenApiSchema
                {
                    OneOf =
                    [
                        context.SchemaGenerator.GenerateSchema(typeof(UploadedDataset), context.SchemaRepository),
                        context.SchemaGenerator.GenerateSchema(typeof(DatasetInfo), context.SchemaRepository),
                    ],
                };
                break;
        }
    }

    private void Upload(OpenApiOperation operation)
    {
        var limits = options.Value;
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = $"A zip of one folder per class (optionally under `train/` and `test/`), at most {limits.MaxUploadBytes.ToString("N0", CultureInfo.InvariantCulture)} bytes.",
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["multipart/form-data"] = new OpenApiMediaType
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.Object,
                        Required = new HashSet<string> { "file" },
                        Properties = new Dictionary<string, IOpenApiSchema>
                        {
                            ["file"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary", Description = "The .zip: PNG, JPEG, WebP, BMP or GIF images in one folder per class." },
                            ["name"] = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = 100, Description = "The dataset's name (default: the zip's file name)." },
                            ["size"] = new OpenApiSchema
                            {
                                Type = JsonSchemaType.Integer, Format = "int32", Minimum = "8", Maximum = limits.MaxSize.ToString(CultureInfo.InvariantCulture),
                                Default = JsonValue.Create(limits.DefaultSize), Description = "Side length the images are stored at.",
                            },
                            ["channels"] = new OpenApiSchema
                            {
                                Type = JsonSchemaType.String, Default = JsonValue.Create("auto"),
                                Enum = [JsonValue.Create("auto"), JsonValue.Create("1"), JsonValue.Create("3"), JsonValue.Create("grey"), JsonValue.Create("gray"), JsonValue.Create("rgb")],
                                Description = "`auto` (grey unless the images have colour), `1` (grey) or `3` (RGB).",
                            },
                        },
                    },
                    Encoding = new Dictionary<string, OpenApiEncoding> { ["file"] = new() { ContentType = "application/zip, application/octet-stream" } },
                },
            },
        };
    }
}
