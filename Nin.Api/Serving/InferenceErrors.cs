using System.Globalization;
using Grpc.Core;
using Nin.Model.Imaging;

namespace Nin.Api.Serving;

/// <summary>Why the data plane refused or could not finish a request; one status per kind for every protocol.</summary>
public enum InferenceErrorKind
{
    /// <summary>Malformed or unusable input: 400, INVALID_ARGUMENT.</summary>
    BadRequest,

    /// <summary>A key is needed (none sent): 401, UNAUTHENTICATED.</summary>
    Unauthorized,

    /// <summary>The key sent is not valid: 403, PERMISSION_DENIED.</summary>
    Forbidden,

    /// <summary>Unknown model or version: 404, NOT_FOUND.</summary>
    NotFound,

    /// <summary>Over a size limit: 413, RESOURCE_EXHAUSTED.</summary>
    TooLarge,

    /// <summary>Not a supported image: 415, INVALID_ARGUMENT.</summary>
    Unsupported,

    /// <summary>Too many loads of non-active versions by callers without a key: 429 + Retry-After, RESOURCE_EXHAUSTED.</summary>
    TooManyLoads,

    /// <summary>The admission queue is full: 503 + Retry-After at once, UNAVAILABLE.</summary>
    Overloaded,

    /// <summary>No model to serve, or the version cannot be loaded on this replica now: 503, UNAVAILABLE.</summary>
    Unavailable,

    /// <summary>The client's deadline passed before the answer: 504, DEADLINE_EXCEEDED.</summary>
    DeadlineExceeded,
}

/// <summary>A refusal of the data plane, with a title and a detail fit for the client.</summary>
public sealed class InferenceException(InferenceErrorKind kind, string title, string detail, TimeSpan? retryAfter = null) : Exception(detail)
{
    public InferenceErrorKind Kind { get; } = kind;

    public string Title { get; } = title;

    /// <summary>When the client may try again (429, 503 overloaded).</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The one error map of the serving data plane (like KServe's <c>errors.py</c>): each kind's HTTP status and gRPC
/// status, and the refusals every protocol shares.
/// </summary>
public static class InferenceErrors
{
    public static int HttpStatus(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.BadRequest => StatusCodes.Status400BadRequest,
        InferenceErrorKind.Unauthorized => StatusCodes.Status401Unauthorized,
        InferenceErrorKind.Forbidden => StatusCodes.Status403Forbidden,
        InferenceErrorKind.NotFound => StatusCodes.Status404NotFound,
        InferenceErrorKind.TooLarge => StatusCodes.Status413PayloadTooLarge,
        InferenceErrorKind.Unsupported => StatusCodes.Status415UnsupportedMediaType,
        InferenceErrorKind.TooManyLoads => StatusCodes.Status429TooManyRequests,
        InferenceErrorKind.Overloaded or InferenceErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        InferenceErrorKind.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static StatusCode GrpcStatus(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.BadRequest or InferenceErrorKind.Unsupported => StatusCode.InvalidArgument,
        InferenceErrorKind.Unauthorized => StatusCode.Unauthenticated,
        InferenceErrorKind.Forbidden => StatusCode.PermissionDenied,
        InferenceErrorKind.NotFound => StatusCode.NotFound,
        InferenceErrorKind.TooLarge or InferenceErrorKind.TooManyLoads => StatusCode.ResourceExhausted,
        InferenceErrorKind.Overloaded or InferenceErrorKind.Unavailable => StatusCode.Unavailable,
        InferenceErrorKind.DeadlineExceeded => StatusCode.DeadlineExceeded,
        _ => StatusCode.Internal,
    };

    /// <summary>Whole seconds for a <c>Retry-After</c> header (at least 1).</summary>
    public static string RetryAfterSeconds(TimeSpan wait) =>
        Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    public static InferenceException BadRequest(string detail, string title = "Invalid inference request.") =>
        new(InferenceErrorKind.BadRequest, title, detail);

    public static InferenceException TooLarge(string title, string detail) => new(InferenceErrorKind.TooLarge, title, detail);

    public static InferenceException UnknownModel(string name, int? version) =>
        new(InferenceErrorKind.NotFound, "Unknown model.", $"There is no model '{name}'" + (version is null ? "." : $" version {version}.") + " See GET /models.");

    public static InferenceException NoActiveModel() =>
        new(InferenceErrorKind.Unavailable, "No model to serve.",
            "No model version is active. Train one with POST /train, or activate a stored version with POST /models/{name}/versions/{version}/activate.");

    public static InferenceException DeadlineExceeded(string stage) =>
        new(InferenceErrorKind.DeadlineExceeded, "Deadline exceeded.", $"The request's deadline passed {stage}; its work was dropped.");

    /// <summary>An image the decoder refused, named by its file name or its position.</summary>
    public static InferenceException FromDecode(ImageDecodeException ex, string? fileName, int index)
    {
        var name = fileName is { } f ? $"'{f}'" : $"#{index + 1}";
        return ex.Kind switch
        {
            ImageErrorKind.Unsupported => new(InferenceErrorKind.Unsupported, "Unsupported image.", $"Image {name}: {ex.Message}"),
            ImageErrorKind.TooLarge => new(InferenceErrorKind.TooLarge, "Image too large.", $"Image {name}: {ex.Message}"),
            ImageErrorKind.Unusable => new(InferenceErrorKind.BadRequest, "Unusable image.", $"Image {name}: {ex.Message}"),
            _ => new(InferenceErrorKind.BadRequest, "Corrupt image.", $"Image {name}: {ex.Message}"),
        };
    }
}
