using System.Globalization;
using Microsoft.Extensions.Options;

namespace Nin.Api.Security;

/// <summary>
/// One budget for the request bodies the whole server holds at once (<see cref="SecurityOptions.MaxBufferedBodyBytes"/>),
/// on top of each route's own limit. A request's <c>Content-Length</c> is reserved before its body is read and given
/// back when its response ends: while the budget cannot hold it the answer is 503 with Retry-After, and a body larger
/// than the whole budget is 413. A chunked body (no length) reserves as it arrives, and is refused with 503 when the
/// budget runs out midway. Requests without a body, and the SignalR hub, are not counted. One instance (a singleton)
/// serves the whole process.
/// </summary>
public sealed partial class RequestBodyBudget(IOptionsMonitor<SecurityOptions> options, IProblemDetailsService problems, ILogger<RequestBodyBudget> logger) : IMiddleware
{
    private long used;

    /// <summary>Bytes reserved now (for tests and metrics).</summary>
    public long Used => Interlocked.Read(ref used);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var capacity = options.CurrentValue.MaxBufferedBodyBytes;
        var request = context.Request;
        var chunked = request.ContentLength is null && request.Headers.TransferEncoding.ToString().Contains("chunked", StringComparison.OrdinalIgnoreCase);
        if (capacity <= 0 || request.Path.StartsWithSegments("/hubs") || (request.ContentLength is not > 0 && !chunked))
        {
            await next(context);
            return;
        }

        if (request.ContentLength is { } length)
        {
            if (length > capacity)
            {
                await Refuse(context, StatusCodes.Status413PayloadTooLarge, "Request body too large.",
                    $"The body declares {length:N0} bytes; the server holds at most {capacity:N0} bytes of request bodies at once (Security:MaxBufferedBodyBytes).");
                return;
            }

            if (!TryReserve(length, capacity))
            {
                LogBusy(logger, length, Used, capacity);
                context.Response.Headers.RetryAfter = "2";
                await Refuse(context, StatusCodes.Status503ServiceUnavailable, "The server is busy receiving other uploads.",
                    $"Request bodies in flight take {Used:N0} of the {capacity:N0} bytes the server holds at once; this one needs {length:N0}. Retry shortly.");
                return;
            }

            try
            {
                await next(context);
            }
            finally
            {
                Interlocked.Add(ref used, -length);
            }

            return;
        }

        var counted = new CountedBody(request.Body, this, capacity);
        request.Body = counted;
        try
        {
            await next(context);
        }
        finally
        {
            Interlocked.Add(ref used, -counted.Reserved);
        }
    }

    private bool TryReserve(long bytes, long capacity)
    {
        while (true)
        {
            var now = Interlocked.Read(ref used);
            if (now + bytes > capacity)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref used, now + bytes, now) == now)
            {
                return true;
            }
        }
    }

    private Task Refuse(HttpContext context, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        return problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        }).AsTask();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request body of {Length} bytes refused (503): {Used} of {Capacity} bytes of request bodies are in flight")]
    private static partial void LogBusy(ILogger logger, long length, long used, long capacity);

    /// <summary>A chunked body that reserves budget for the bytes as they are read.</summary>
    private sealed class CountedBody(Stream inner, RequestBodyBudget budget, long capacity) : Stream
    {
        public long Reserved { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int n)
        {
            if (n > 0)
            {
                if (!budget.TryReserve(n, capacity))
                {
                    throw new BadHttpRequestException(
                        string.Create(CultureInfo.InvariantCulture, $"The server holds at most {capacity:N0} bytes of request bodies at once (Security:MaxBufferedBodyBytes) and has no room for more of this one; retry shortly."),
                        StatusCodes.Status503ServiceUnavailable);
                }

                Reserved += n;
            }

            return n;
        }
    }
}
