using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Kestrel refuses a request it cannot parse (a path that decodes to NUL such as <c>/models/%00</c>, a malformed request
/// line, headers over the limits) before the application sees it, with an empty 4xx and <c>Connection: close</c>. This
/// connection middleware recognises exactly that canned answer on its way out and gives it a ProblemDetails body, so
/// every error of the service is <c>application/problem+json</c>, as the document says. Everything else passes through
/// unchanged (TLS and HTTP/2 bytes never look like it).
/// </summary>
public static class RejectedRequestProblems
{
    public static IHostApplicationBuilder AddRejectedRequestProblems(this IHostApplicationBuilder builder)
    {
        builder.Services.Configure<KestrelServerOptions>(o => o.AddEndpointDefault(listen => listen.Use(next => async connection =>
        {
            var transport = connection.Transport;
            var output = new Writer(transport.Output);
            connection.Transport = new Pipe(transport.Input, output);
            try
            {
                await next(connection);
            }
            finally
            {
                connection.Transport = transport;
            }
        })));
        return builder;
    }

    /// <summary>The body given to a canned rejection, as UTF-8 JSON; null when the bytes are not one.</summary>
    internal static byte[]? Rewrite(ReadOnlySpan<byte> written)
    {
        // "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\nDate: …\r\nServer: Kestrel\r\n\r\n"
        if (written.Length is < 16 or > 1024 || !written.StartsWith("HTTP/1."u8) || written[9] != (byte)'4' || !written.EndsWith("\r\n\r\n"u8)
            || written[..^2].IndexOf("\r\n\r\n"u8) >= 0)
        {
            return null;
        }

        var head = Encoding.ASCII.GetString(written);
        if (!head.Contains("\r\nContent-Length: 0\r\n", StringComparison.OrdinalIgnoreCase)
            || !head.Contains("\r\nConnection: close\r\n", StringComparison.OrdinalIgnoreCase)
            || head.Contains("\r\nContent-Type:", StringComparison.OrdinalIgnoreCase)
            || !int.TryParse(head.AsSpan(9, 3), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var status))
        {
            return null;
        }

        var title = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
        var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new
        {
            type = "https://tools.ietf.org/html/rfc9110#section-15.5",
            title,
            status,
            detail = "The HTTP server could not accept this request: its request line or headers are malformed or too large (for example a path that decodes to a NUL character).",
        });
        var headers = head[..^2].Replace("\r\nContent-Length: 0\r\n", $"\r\nContent-Type: application/problem+json\r\nContent-Length: {body.Length}\r\n", StringComparison.OrdinalIgnoreCase);
        return [.. Encoding.ASCII.GetBytes(headers + "\r\n"), .. body];
    }

    private sealed class Pipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>
    /// Holds back what is written between two flushes while it is small enough to be a canned rejection (1 KiB), then
    /// writes it on, rewritten when it is one; larger writes go straight through until the next flush.
    /// </summary>
    private sealed class Writer(PipeWriter inner) : PipeWriter
    {
        private const int Window = 1024;
        private readonly ArrayBufferWriter<byte> held = new(Window);
        private bool passThrough;

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => held.WrittenCount + inner.UnflushedBytes;

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            Spill(sizeHint);
            return passThrough ? inner.GetMemory(sizeHint) : held.GetMemory(Math.Max(sizeHint, 256));
        }

        public override Span<byte> GetSpan(int sizeHint = 0)
        {
            Spill(sizeHint);
            return passThrough ? inner.GetSpan(sizeHint) : held.GetSpan(Math.Max(sizeHint, 256));
        }

        public override void Advance(int bytes)
        {
            if (passThrough)
            {
                inner.Advance(bytes);
            }
            else
            {
                held.Advance(bytes);
            }
        }

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            WriteHeld();
            passThrough = false;
            return await inner.FlushAsync(cancellationToken);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            WriteHeld();
            inner.Complete(exception);
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            WriteHeld();
            await inner.CompleteAsync(exception);
        }

        private void WriteHeld()
        {
            if (held.WrittenCount > 0)
            {
                inner.Write(Rewrite(held.WrittenSpan) ?? held.WrittenSpan);
                held.ResetWrittenCount();
            }
        }

        /// <summary>Past the window nothing can be a canned rejection: write what is held and pass the rest through.</summary>
        private void Spill(int sizeHint)
        {
            if (!passThrough && held.WrittenCount + Math.Max(sizeHint, 1) > Window)
            {
                inner.Write(held.WrittenSpan);
                held.ResetWrittenCount();
                passThrough = true;
            }
        }
    }
}
