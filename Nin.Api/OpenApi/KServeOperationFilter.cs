using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Nin.Api.Serving;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// The KServe infer routes read their body themselves, as JSON or as JSON followed by binary tensors (the binary tensor
/// data extension), and answer binary outputs the same way: both bodies are described here, with an example that the
/// server answers (a real base64 PNG).
/// </summary>
internal sealed class KServeOperationFilter : IOperationFilter
{
    /// <summary>A 28×28 grey PNG (a light shape on black), base64: what a client puts in a BYTES <c>images</c> element.</summary>
    public const string ExamplePng = "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAGklEQVR42mNgGJHgBBiMSmJI3sEAAyw5iAAA2+B8ObCDuOUAAAAASUVORK5CYII=";

    private const string BinaryLayout =
        "The binary tensor data extension: the first `Inference-Header-Content-Length` bytes are the JSON, then the bytes of each tensor " +
        "whose `parameters.binary_data_size` is set, in order (FP32 little-endian; BYTES as a 4-byte little-endian length and the bytes, per element).";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.OperationId is not ("V2ModelInfer" or "V2ModelInferVersion"))
        {
            return;
        }

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = "An Open Inference Protocol request with exactly one input: `input` (FP32 [N, C, S, S]) or `images` (BYTES [N], base64 image files in JSON). " +
                "As `application/octet-stream` (any Content-Type works with the header): " + BinaryLayout,
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["application/json"] = new OpenApiMediaType
                {
                    Schema = context.SchemaGenerator.GenerateSchema(typeof(V2InferRequest), context.SchemaRepository),
                    Example = JsonNode.Parse($$"""
                        { "id": "1", "inputs": [ { "name": "images", "shape": [1], "datatype": "BYTES", "data": ["{{ExamplePng}}"] } ], "outputs": [ { "name": "probabilities" }, { "name": "label" } ] }
                        """),
                },
                ["application/octet-stream"] = new OpenApiMediaType
                {
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary", Description = BinaryLayout },
                },
            },
        };

        if (operation.Responses?.TryGetValue("200", out var ok) == true && ok is OpenApiResponse response)
        {
            response.Description = "The outputs: JSON, or with binary outputs requested (`binary_data` on an output, `binary_data_output` on the request) " +
                "`application/octet-stream` laid out as " + BinaryLayout;
            response.Content ??= new Dictionary<string, IOpenApiMediaType>();
            if (response.Content.TryGetValue("application/json", out var json) && json is OpenApiMediaType media)
            {
                media.Example = JsonNode.Parse("""
                    {
                      "model_name": "fashion-mnist", "model_version": "1", "id": "1",
                      "outputs": [
                        { "name": "probabilities", "shape": [1, 3], "datatype": "FP32", "data": [0.97, 0.02, 0.01] },
                        { "name": "label", "shape": [1], "datatype": "BYTES", "data": ["Ankle boot"] }
                      ]
                    }
                    """);
            }

            response.Content["application/octet-stream"] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary", Description = BinaryLayout },
            };
            response.Headers ??= new Dictionary<string, IOpenApiHeader>();
            response.Headers[KServeBinary.HeaderLengthHeader] = new OpenApiHeader
            {
                Description = "On a binary answer: the length of its JSON part in bytes.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32" },
            };
        }
    }
}
