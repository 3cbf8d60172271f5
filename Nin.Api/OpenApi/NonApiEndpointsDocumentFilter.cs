using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// Endpoints mapped with a plain request delegate (health checks, the Prometheus scrape) are invisible to ApiExplorer;
/// this adds them to the document from their endpoint metadata. The SignalR hub is described in the document's
/// introduction instead.
/// </summary>
internal sealed class NonApiEndpointsDocumentFilter(EndpointDataSource endpoints) : IDocumentFilter
{
    private static readonly Dictionary<string, (string Tag, string Summary, string Description, string ContentType)> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        ["/metrics"] = ("Operations", "Prometheus metrics", "OpenTelemetry metrics in the Prometheus text format: HTTP server, .NET runtime, inference batching and training.", "text/plain"),
    };

    public static bool IsDocumented(RouteEndpoint endpoint) =>
        endpoint.RoutePattern.RawText is { } raw
        && !raw.StartsWith("/hubs/", StringComparison.OrdinalIgnoreCase)
        && !raw.StartsWith("/hangfire", StringComparison.OrdinalIgnoreCase)
        && !raw.StartsWith("/swagger", StringComparison.OrdinalIgnoreCase);

    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        swaggerDoc.Paths ??= [];
        foreach (var endpoint in endpoints.Endpoints.OfType<RouteEndpoint>())
        {
            if (!IsDocumented(endpoint) || endpoint.Metadata.GetMetadata<System.Reflection.MethodInfo>() is not null)
            {
                continue; // ApiExplorer documents route handlers itself
            }

            var path = "/" + endpoint.RoutePattern.RawText!.TrimStart('/');
            var summary = endpoint.Metadata.GetMetadata<IEndpointSummaryMetadata>()?.Summary;
            var description = endpoint.Metadata.GetMetadata<IEndpointDescriptionMetadata>()?.Description;
            var tag = endpoint.Metadata.GetMetadata<ITagsMetadata>()?.Tags.FirstOrDefault();
            var contentType = "application/json";
            if (Known.TryGetValue(path, out var known))
            {
                (tag, summary, description, contentType) = (tag ?? known.Tag, summary ?? known.Summary, description ?? known.Description, known.ContentType);
            }

            if (summary is null || swaggerDoc.Paths.ContainsKey(path))
            {
                continue;
            }

            var operation = new OpenApiOperation
            {
                OperationId = endpoint.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName,
                Summary = summary,
                Description = description,
                Tags = tag is null ? null : new HashSet<OpenApiTagReference> { new(tag, swaggerDoc) },
                Responses = [],
            };
            var produces = endpoint.Metadata.GetOrderedMetadata<IProducesResponseTypeMetadata>();
            foreach (var p in produces)
            {
                var media = new OpenApiMediaType
                {
                    Schema = p.Type is null || p.Type == typeof(void) ? null : context.SchemaGenerator.GenerateSchema(p.Type, context.SchemaRepository),
                };
                var types = p.ContentTypes.Any() ? p.ContentTypes : [contentType];
                operation.Responses[p.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new OpenApiResponse
                {
                    Description = p.Description ?? Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(p.StatusCode),
                    Content = types.ToDictionary(t => t, _ => (IOpenApiMediaType)media),
                };
            }

            if (produces.Count == 0)
            {
                operation.Responses["200"] = new OpenApiResponse
                {
                    Description = "OK",
                    Content = new Dictionary<string, IOpenApiMediaType> { [contentType] = new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String } } },
                };
            }

            if (!operation.Responses.Keys.Any(k => k[0] is '4' or '5'))
            {
                operation.Responses["500"] = new OpenApiResponse { Description = "Internal server error." };
            }

            var item = new OpenApiPathItem();
            item.AddOperation(HttpMethod.Get, operation);
            swaggerDoc.Paths[path] = item;
        }
    }
}
