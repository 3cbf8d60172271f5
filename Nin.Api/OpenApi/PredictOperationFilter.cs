using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// POST /predict reads its body itself (an <c>.Accepts</c> would make routing answer 415 to raw image bodies), so its
/// request body is described here: a multipart form with a file picker for <c>images</c>, or one raw image.
/// </summary>
internal sealed class PredictOperationFilter(Microsoft.Extensions.Options.IOptions<Serving.ServingOptions> serving) : IOperationFilter
{
    public const string OperationId = "Predict";

    public static readonly string[] ImageTypes = ["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"];

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.OperationId != OperationId)
        {
            return;
        }

        var content = new Dictionary<string, OpenApiMediaType>
        {
            ["multipart/form-data"] = new()
            {
                Schema = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Required = new HashSet<string> { "images" },
                    Properties = new Dictionary<string, IOpenApiSchema>
                    {
                        ["images"] = new OpenApiSchema
                        {
                            Type = JsonSchemaType.Array,
                            Description = $"One or more image files (PNG, JPEG, WebP, GIF, BMP), at most {serving.Value.MaxImagesPerRequest}. The field may also be named `image`.",
                            Items = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" },
                            MinItems = 1,
                            MaxItems = serving.Value.MaxImagesPerRequest,
                        },
                    },
                },
                Encoding = new Dictionary<string, OpenApiEncoding>
                {
                    ["images"] = new() { ContentType = string.Join(", ", ImageTypes) },
                },
            },
        };
        foreach (var type in ImageTypes.Append("application/octet-stream"))
        {
            content[type] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary", Description = "One encoded image as the raw body." },
            };
        }

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = "Images as `multipart/form-data` files in the field `images`, or one image as the raw body with its image Content-Type (or `application/octet-stream`, or none: the format is read from the bytes).",
            Content = content.ToDictionary(kv => kv.Key, kv => (IOpenApiMediaType)kv.Value),
        };

        var descriptions = new Dictionary<string, (string Text, IOpenApiSchema Schema)>
        {
            ["topK"] = ("How many labels to return per image, most probable first (1–1000, default 3; capped at the number of classes).",
                new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "1", Maximum = "1000", Default = JsonValue.Create(3) }),
            ["model"] = ("Model name to use instead of the active one (its active version if it is the active model, else its newest).",
                new OpenApiSchema { Type = JsonSchemaType.String }),
            ["version"] = ("Version of `model` to use (a positive integer).",
                new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "1" }),
            ["invert"] = ("`auto` (default) inverts images with a light border, so dark-on-light photos match Fashion-MNIST's light-on-dark; `true`/`false` force it.",
                new OpenApiSchema { Type = JsonSchemaType.String, Enum = [JsonValue.Create("auto"), JsonValue.Create("true"), JsonValue.Create("false")], Default = JsonValue.Create("auto") }),
            ["explain"] = ("`cam`: add a class activation map to each prediction (`explanation`: CAM from the class maps where they are at least 7×7, else Grad-CAM at the deepest stage that is; one more forward and one backward pass). Absent (default): none.",
                new OpenApiSchema { Type = JsonSchemaType.String, Enum = [JsonValue.Create("cam")] }),
            ["explainClass"] = ("With `explain=cam`: the class the maps explain, by index or name (case-insensitive); default each image's predicted class.",
                new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 200 }),
        };
        operation.Parameters ??= [];
        foreach (var (name, (text, schema)) in descriptions)
        {
            var existing = operation.Parameters.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
            if (existing is not null)
            {
                operation.Parameters.Remove(existing);
            }

            operation.Parameters.Add(new OpenApiParameter { Name = name, In = ParameterLocation.Query, Required = false, Description = text, Schema = schema });
        }

        if (operation.Responses?.TryGetValue("200", out var ok) == true && ok.Content?.TryGetValue("application/json", out var json) == true && json is OpenApiMediaType media)
        {
            media.Example = JsonNode.Parse("""
                {
                  "model": { "name": "fashion-mnist", "version": 3 },
                  "device": "cpu",
                  "elapsedMs": 12.4,
                  "predictions": [
                    {
                      "file": "boot.png", "label": "ankle boot", "index": 9, "probability": 0.97, "inverted": false,
                      "top": [
                        { "label": "ankle boot", "index": 9, "probability": 0.97 },
                        { "label": "sneaker", "index": 7, "probability": 0.02 },
                        { "label": "sandal", "index": 5, "probability": 0.01 }
                      ]
                    }
                  ]
                }
                """);
        }
    }
}
