namespace Nin.Api.Serving;

/// <summary>
/// Errors that other parts of the pipeline write as ProblemDetails (a missing key, the request timeout's 504, an
/// exception's 500) are written as the Open Inference Protocol's <c>{ "error": "..." }</c> under <c>/v2</c>, so KServe's
/// and Triton's clients read every error of that surface the same way. Registered ahead of the default writer.
/// </summary>
internal sealed class V2ErrorWriter : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) =>
        context.HttpContext.Request.Path.StartsWithSegments("/v2") && !context.HttpContext.Response.HasStarted;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var message = (problem.Title, problem.Detail) switch
        {
            ({ } title, { } detail) => $"{title} {detail}",
            (null, { } detail) => detail,
            ({ } title, null) => title,
            _ => $"HTTP {context.HttpContext.Response.StatusCode}.",
        };
        return new ValueTask(context.HttpContext.Response.WriteAsJsonAsync(new V2Error(message)));
    }
}
