using System.Collections.Concurrent;
using System.Net.Http.Headers;

namespace Nin.Api.Tests.Contract;

/// <summary>
/// One real request and its response as the client saw them. <see cref="RequestJson"/> is the body of a JSON request
/// (null for other bodies); <see cref="Source"/> says which part of the sweep sent it.
/// </summary>
public sealed record Exchange(
    string Method,
    Uri Url,
    string? RequestContentType,
    string? RequestJson,
    int Status,
    string? ContentType,
    byte[] Body,
    string Source)
{
    public string Path => Url.IsAbsoluteUri ? Url.AbsolutePath : Url.OriginalString.Split('?')[0];

    public override string ToString() => $"{Method} {Url.PathAndQuery} → {Status} {ContentType ?? "(no content type)"} [{Source}]";
}

/// <summary>Every exchange made through a client it handles, in order (thread-safe).</summary>
public sealed class ContractRecording
{
    private readonly ConcurrentQueue<Exchange> exchanges = new();

    /// <summary>What the next exchanges are part of, for failure messages (e.g. "datasets: upload without a key").</summary>
    public string Source { get; set; } = "";

    public IReadOnlyList<Exchange> Exchanges => [.. exchanges];

    public void Add(Exchange exchange) => exchanges.Enqueue(exchange);
}

/// <summary>
/// A handler for test clients that records each request and its buffered response into a <see cref="ContractRecording"/>,
/// optionally sending an API key, so the contract test can validate what the server really answered.
/// </summary>
public sealed class RecordingHandler(ContractRecording recording, string? apiKey = null) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (apiKey is not null && !request.Headers.Contains("X-Api-Key"))
        {
            request.Headers.Add("X-Api-Key", apiKey);
        }

        string? requestJson = null;
        var requestType = request.Content?.Headers.ContentType?.MediaType;
        if (request.Content is not null && IsJson(requestType))
        {
            await request.Content.LoadIntoBufferAsync(cancellationToken);
            requestJson = await request.Content.ReadAsStringAsync(cancellationToken);
        }

        var source = recording.Source;
        var response = await base.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);

        // The body was read to record it: hand the caller an equivalent, readable copy.
        var copy = new ByteArrayContent(body);
        foreach (var header in response.Content.Headers)
        {
            copy.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        response.Content = copy;
        recording.Add(new Exchange(request.Method.Method, request.RequestUri!, requestType, requestJson, (int)response.StatusCode,
            response.Content.Headers.ContentType?.MediaType, body, source));
        return response;
    }

    public static bool IsJson(string? mediaType) =>
        mediaType is not null && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    public static MediaTypeHeaderValue Json => new("application/json");
}
