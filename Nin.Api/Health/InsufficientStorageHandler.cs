using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Health;

/// <summary>
/// A write that failed for want of disk space, anywhere in a request: 507 Insufficient Storage with what it needed and
/// what is free (<c>neededBytes</c>, <c>freeBytes</c>, <c>folder</c> by role), not a 500. The writers leave nothing behind
/// (temporary files removed, no record without its data) and change nothing that existed.
/// </summary>
public sealed partial class InsufficientStorageHandler(IProblemDetailsService problems, IOptions<NinOptions> folders, ILogger<InsufficientStorageHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!DurableFile.IsDiskFull(exception) || httpContext.Response.HasStarted)
        {
            return false;
        }

        var (folder, path) = DataFolders.ForRequest(httpContext.Request.Path, folders.Value);
        var known = exception as InsufficientStorageException ?? exception.InnerException as InsufficientStorageException;
        long? needed = known?.Needed ?? httpContext.Request.ContentLength;
        long free;
        try
        {
            free = known?.Free ?? DiskSpace.Free(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            free = 0;
        }

        var what = known?.What ?? "this request's data";
        LogFull(logger, httpContext.Request.Method, httpContext.Request.Path, folder, needed ?? -1, free, exception.GetBaseException().Message);
        httpContext.Response.StatusCode = StatusCodes.Status507InsufficientStorage;
        var details = new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails =
            {
                Status = StatusCodes.Status507InsufficientStorage,
                Title = "Not enough disk space.",
                Detail = needed is { } n
                    ? $"Writing {what} to the {folder} folder needs about {InsufficientStorageException.Format(n)}; {InsufficientStorageException.Format(free)} is free. Nothing was stored and nothing that existed was changed; free some space and retry."
                    : $"Writing {what} to the {folder} folder failed for want of space; {InsufficientStorageException.Format(free)} is free. Nothing was stored and nothing that existed was changed; free some space and retry.",
            },
        };
        details.ProblemDetails.Extensions["folder"] = folder;
        details.ProblemDetails.Extensions["neededBytes"] = needed;
        details.ProblemDetails.Extensions["freeBytes"] = free;
        return await problems.TryWriteAsync(details);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path}: the {Folder} folder is full (needed {Needed} bytes, {Free} free): {Reason}")]
    private static partial void LogFull(ILogger logger, string method, string path, string folder, long needed, long free, string reason);
}
