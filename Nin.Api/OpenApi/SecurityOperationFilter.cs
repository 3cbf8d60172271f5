using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Nin.Api.Security;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// Who may call an operation and how it can be refused, from the rules the server applies: the key middleware's own
/// <see cref="ApiKeyMiddleware.RequiresKey"/> (security requirement, 401 without a key, 403 with a wrong one, when the
/// service has keys), the cross-site guard (403 on every request that changes state) and the rate-limit policies
/// attached to the endpoint (429).
/// </summary>
internal sealed class SecurityOperationFilter(IOptions<SecurityOptions> security, IOptions<RateLimitingOptions> rateLimits) : IOperationFilter
{
    public const string ApiKeyScheme = "ApiKey";
    public const string BearerScheme = "Bearer";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var method = context.ApiDescription.HttpMethod ?? HttpMethods.Get;
        if (RequiresKey(method, "/" + context.ApiDescription.RelativePath) && security.Value.HasConfiguredKeys)
        {
            operation.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = [] },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] },
            ];
            ErrorResponses.AddProblem(operation, context, StatusCodes.Status401Unauthorized,
                $"No API key: send one as the `{ApiKeyMiddleware.HeaderName}` header or as `Authorization: Bearer <key>` (the answer carries `WWW-Authenticate: Bearer`).");
            ErrorResponses.AddProblem(operation, context, StatusCodes.Status403Forbidden, "The API key sent is not one of the service's keys.");
        }

        if (HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method))
        {
            ErrorResponses.AddProblem(operation, context, StatusCodes.Status403Forbidden,
                "A browser page of another site sent it (`Sec-Fetch-Site` cross-site or same-site, or a foreign `Origin`; see `Security:AllowedOrigins`).");
        }

        if (rateLimits.Value.Enabled && context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<EnableRateLimitingAttribute>().Any())
        {
            ErrorResponses.AddError(operation, context, StatusCodes.Status429TooManyRequests,
                "This client's request limit (per API key, or per IP address without one) is used up; `Retry-After` says when to retry.");
        }
    }

    /// <summary>Asks the key middleware itself whether a request of this method to this route template needs a key.</summary>
    private bool RequiresKey(string method, string template)
    {
        var request = new DefaultHttpContext().Request;
        request.Method = method;
        request.Path = new PathString(template.TrimEnd('/') is { Length: > 0 } p ? p : "/");
        return ApiKeyMiddleware.RequiresKey(request, security.Value.ProtectPredict);
    }
}
