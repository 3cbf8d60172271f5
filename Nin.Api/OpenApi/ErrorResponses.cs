using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using Nin.Api.Serving;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// The error answers the document adds to operations: ProblemDetails (<c>application/problem+json</c>), or on the
/// KServe routes the Open Inference Protocol's <c>{ "error" }</c> (<c>application/json</c>).
/// </summary>
internal static class ErrorResponses
{
    public const string ProblemJson = "application/problem+json";

    public static bool IsKServe(OperationFilterContext context) =>
        context.ApiDescription.RelativePath is { } path && (path == "v2" || path.StartsWith("v2/", StringComparison.Ordinal));

    /// <summary>Adds <paramref name="status"/> as ProblemDetails, or adds ProblemDetails beside what the status already documents.</summary>
    public static void AddProblem(OpenApiOperation operation, OperationFilterContext context, int status, string description) =>
        Add(operation, context, status, typeof(ProblemDetails), ProblemJson, description);

    /// <summary>The route's own error shape: V2Error on KServe routes, ProblemDetails elsewhere.</summary>
    public static void AddError(OpenApiOperation operation, OperationFilterContext context, int status, string description)
    {
        if (IsKServe(context))
        {
            Add(operation, context, status, typeof(V2Error), "application/json", description);
        }
        else
        {
            AddProblem(operation, context, status, description);
        }
    }

    public static void Add(OpenApiOperation operation, OperationFilterContext context, int status, Type type, string contentType, string description)
    {
        operation.Responses ??= [];
        var code = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var schema = context.SchemaGenerator.GenerateSchema(type, context.SchemaRepository);
        if (operation.Responses.TryGetValue(code, out var existing) && existing is OpenApiResponse response)
        {
            response.Content ??= new Dictionary<string, IOpenApiMediaType>();
            response.Content.TryAdd(contentType, new OpenApiMediaType { Schema = schema });
            if (string.IsNullOrEmpty(response.Description) || IsReasonPhrase(response.Description, status))
            {
                response.Description = description;
            }
            else if (!response.Description.Contains(description, StringComparison.Ordinal))
            {
                response.Description += " Also: " + description;
            }

            return;
        }

        operation.Responses[code] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, IOpenApiMediaType> { [contentType] = new OpenApiMediaType { Schema = schema } },
        };
    }

    private static bool IsReasonPhrase(string description, int status) =>
        string.Equals(description, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status), StringComparison.OrdinalIgnoreCase);
}
