using Microsoft.AspNetCore.Diagnostics;
using Npgsql;

namespace Nin.Api.Cluster;

/// <summary>
/// PostgreSQL unreachable while a request reads or writes job records or the active model: 503 with a ProblemDetails that
/// says so (and Retry-After), not a 500 — the client did nothing wrong and can retry; readiness names jobStorage meanwhile.
/// </summary>
public sealed partial class SharedStateUnavailableHandler(IProblemDetailsService problems, ILogger<SharedStateUnavailableHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not (NpgsqlException or TimeoutException) || httpContext.Response.HasStarted)
        {
            return false;
        }

        LogUnavailable(logger, exception.GetBaseException().Message);
        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = "5";
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "The job storage is not reachable.",
                Detail = "PostgreSQL, which keeps the training jobs and the active model, does not answer; retry shortly. GET /health/ready reports it as jobStorage.",
            },
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shared state unavailable: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
