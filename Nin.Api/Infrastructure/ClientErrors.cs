using System.Text.RegularExpressions;
using Nin.Model.Checkpoints;

namespace Nin.Api.Infrastructure;

/// <summary>
/// What a client (a job record, the hub, the dashboard, an error body, a readiness detail) may see of an exception:
/// the messages this service writes for people, with the service's folders shown as <c>{data}</c>, <c>{models}</c>,
/// <c>{work}</c> and any other absolute path as <c>…</c>; for anything else only its kind. The full exception
/// goes to the log.
/// </summary>
public static partial class ClientErrors
{
    public static string Describe(Exception exception, NinOptions? folders = null)
    {
        var message = exception switch
        {
            FileNotFoundException or DirectoryNotFoundException or InvalidDataException or CheckpointException
                or ArgumentException or NotSupportedException or TimeoutException or HttpRequestException => exception.Message,
            OutOfMemoryException => "The run ran out of memory; use a smaller batchSize or imageSize.",
            _ when exception.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase) => "The device ran out of memory; use a smaller batchSize or imageSize.",
            _ => $"The job failed ({exception.GetType().Name}); the service's log has the details.",
        };
        return Scrub(message, folders);
    }

    /// <summary>The text with the service's folders named by role and any other absolute path elided.</summary>
    public static string Scrub(string text, NinOptions? folders = null)
    {
        if (folders is not null)
        {
            foreach (var (path, name) in new[]
            {
                (folders.ResolvedDataDirectory, "{data}"),
                (folders.ResolvedModelsDirectory, "{models}"),
                (folders.ResolvedWorkDirectory, "{work}"),
                (folders.ResolvedHome, "{home}"),
            })
            {
                text = text.Replace(path, name, StringComparison.Ordinal);
            }
        }

        return AbsolutePath().Replace(text, "…");
    }

    // A Unix path of two or more segments (not inside a URL or a relative path), or a Windows drive path.
    [GeneratedRegex(@"(?<![\w.:/{}…-])/[^\s'""/]+(?:/[^\s'""/]*)+|\b[A-Za-z]:\\[^\s'""]*")]
    private static partial Regex AbsolutePath();
}
