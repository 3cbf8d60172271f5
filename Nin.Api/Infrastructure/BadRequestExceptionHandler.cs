using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace Nin.Api.Infrastructure;

/// <summary>
/// What the framework refuses while binding a request (a body that is not JSON, malformed JSON, a field of the wrong
/// type or one the request does not have, a query value of the wrong type) answered as ProblemDetails that say what:
/// a JSON body's errors as a <c>ValidationProblem</c> whose <c>errors</c> name the field by its JSON path
/// (<c>epoch</c>, <c>inputs[0].name</c>), as POST /train's own validation does. Never the .NET type names.
/// <c>RouteHandlerOptions.ThrowOnBadRequest</c> makes the binder throw so this handler sees it.
/// </summary>
internal sealed partial class BadRequestExceptionHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad || httpContext.Response.HasStarted)
        {
            return false;
        }

        httpContext.Response.StatusCode = bad.StatusCode;
        ProblemDetails problem = bad.InnerException is JsonException json
            ? new HttpValidationProblemDetails(new Dictionary<string, string[]> { [Field(json.Path)] = [Describe(json)] })
            {
                Title = "The request body is not valid.",
            }
            : new ProblemDetails
            {
                Title = bad.StatusCode == StatusCodes.Status415UnsupportedMediaType ? "Unsupported Content-Type." : "The request could not be read.",
                Detail = Describe(bad),
            };
        problem.Status = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem, Exception = exception });
    }

    /// <summary>The JSON path as a field name: <c>$.epoch</c> → <c>epoch</c>; the whole body is <c>$</c>.</summary>
    internal static string Field(string? path) =>
        string.IsNullOrEmpty(path) || path == "$" ? "$" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');

    private static string Describe(JsonException json)
    {
        var field = Field(json.Path);
        var where = json.LineNumber is { } line ? $" (line {line + 1})" : "";

        // System.Text.Json's own message names .NET types; say it in the request's terms instead.
        if (json.Message.Contains("could not be mapped", StringComparison.Ordinal))
        {
            return $"'{field}' is not a field of this request{where}; check its spelling against the schema.";
        }

        return field == "$"
            ? $"The body is not valid JSON of this request's shape{where}."
            : $"'{field}' is malformed or of the wrong type{where}.";
    }

    private static string Describe(BadHttpRequestException bad)
    {
        if (bad.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return "Send the body as application/json.";
        }

        // The binder's messages name the parameter with its .NET type ("Nullable<int> topK"): keep the name only.
        if (BindFailure().Match(bad.Message) is { Success: true } failed)
        {
            return $"'{failed.Groups["name"].Value}' cannot be \"{Trim(failed.Groups["value"].Value)}\": it is not a value of that parameter's type.";
        }

        return MissingParameter().Match(bad.Message) is { Success: true } missing
            ? $"'{missing.Groups["name"].Value}' is required."
            : ClientErrors.Scrub(bad.Message);
    }

    private static string Trim(string value) => value.Length > 64 ? value[..64] + "…" : value;

    [System.Text.RegularExpressions.GeneratedRegex("^Failed to bind parameter \"(?:.* )?(?<name>[^ \"]+)\" from \"(?<value>.*)\"\\.?$", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex BindFailure();

    [System.Text.RegularExpressions.GeneratedRegex("^Required parameter \"(?:.* )?(?<name>[^ \"]+)\" was not provided")]
    private static partial System.Text.RegularExpressions.Regex MissingParameter();
}
