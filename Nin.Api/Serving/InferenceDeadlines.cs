using System.Globalization;
using System.Text.Json;

namespace Nin.Api.Serving;

/// <summary>
/// A client's deadline for one request: the <c>X-Request-Timeout-Ms</c> header (milliseconds) on every HTTP route, the
/// request parameter <c>timeout</c> of the Open Inference Protocol (microseconds, as Triton's clients send it), and on
/// gRPC the call's own deadline. The server's request timeout (<c>Security:RequestTimeoutSeconds</c>) bounds them all.
/// </summary>
public static class InferenceDeadlines
{
    public const string Header = "X-Request-Timeout-Ms";

    /// <summary>The OIP request parameter, in microseconds.</summary>
    public const string Parameter = "timeout";

    /// <summary>Longest deadline accepted: an hour (the server's request timeout is shorter anyway).</summary>
    public static readonly TimeSpan Longest = TimeSpan.FromHours(1);

    /// <summary>The header's deadline, null without one; a 400 for a value that is not a positive number of milliseconds.</summary>
    public static TimeSpan? FromHeader(HttpRequest request)
    {
        if (!request.Headers.TryGetValue(Header, out var values) || values.Count == 0)
        {
            return null;
        }

        var text = values.ToString().Trim();
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) || !double.IsFinite(ms) || ms <= 0 || ms > Longest.TotalMilliseconds)
        {
            throw InferenceErrors.BadRequest($"{Header} must be a number of milliseconds between 0 and {Longest.TotalMilliseconds:F0}; got '{text}'.", "Invalid deadline.");
        }

        return TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>The OIP <c>timeout</c> parameter (microseconds); null without one; a 400 for anything but a positive integer.</summary>
    public static TimeSpan? FromMicroseconds(long? microseconds, string? raw = null)
    {
        if (microseconds is null)
        {
            return raw is null ? null : throw Invalid(raw);
        }

        if (microseconds <= 0 || microseconds > (long)Longest.TotalMicroseconds)
        {
            throw Invalid(microseconds.Value.ToString(CultureInfo.InvariantCulture));
        }

        return TimeSpan.FromMicroseconds(microseconds.Value);
    }

    /// <summary>The <c>timeout</c> of a JSON parameters object.</summary>
    public static TimeSpan? FromParameters(IReadOnlyDictionary<string, JsonElement>? parameters)
    {
        if (parameters is null || !parameters.TryGetValue(Parameter, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var us) ? FromMicroseconds(us) : FromMicroseconds(null, value.ToString());
    }

    /// <summary>The earlier of two deadlines (either may be absent).</summary>
    public static TimeSpan? Earliest(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null ? a : a < b ? a : b;

    private static InferenceException Invalid(string raw) =>
        InferenceErrors.BadRequest($"The '{Parameter}' parameter must be a positive whole number of microseconds, at most {Longest.TotalMicroseconds:F0}; got '{raw}'.", "Invalid deadline.");
}
