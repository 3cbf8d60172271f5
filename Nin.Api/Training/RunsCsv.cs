using System.Globalization;
using System.Text;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// The runs table of <c>GET /train?format=csv</c>: one row per job, the columns of <see cref="Header"/>. RFC 4180: CRLF
/// line ends, a header row always, a field with a comma, quote, CR or LF quoted and its quotes doubled. Numbers and
/// times are culture-invariant (<c>0.8125</c>, ISO 8601 UTC). A text field that starts with <c>=</c>, <c>+</c>,
/// <c>-</c>, <c>@</c>, a tab or a CR gets a leading apostrophe (<c>'</c>), so a spreadsheet shows it as text instead of
/// running it as a formula (CSV injection: a dataset name or error message is partly user input).
/// </summary>
public static class RunsCsv
{
    public const string MediaType = "text/csv";
    public const string ContentType = "text/csv; charset=utf-8";
    public const string FileName = "nin-runs.csv";

    /// <summary>Values of <c>format</c>: the default first.</summary>
    public static readonly IReadOnlyList<string> Formats = ["json", "csv"];

    /// <summary>Joins a run's warnings in one field (the warnings themselves contain commas and semicolons).</summary>
    public const string WarningSeparator = " | ";

    private static readonly char[] NeedsQuotes = [',', '"', '\r', '\n'];

    /// <summary>What a spreadsheet reads as the start of a formula (OWASP's list): such a text field gets a leading apostrophe.</summary>
    private static readonly char[] FormulaStarts = ['=', '+', '-', '@', '\t', '\r'];

    private static readonly (string Name, Func<JobSnapshot, Cell> Value)[] Columns =
    [
        ("job_id", j => Text(j.JobId)),
        ("status", j => Text(j.Status.ToString())),
        ("model_name", j => Text(j.ModelName ?? j.Request.ModelName)),
        ("model_version", j => Number(j.ModelVersion)),
        ("dataset", j => Text(j.Request.Dataset)),
        ("recipe", j => Text(j.Request.Recipe)),
        ("architecture", j => Text(j.Request.Architecture)),
        ("epochs", j => Number(j.Request.Epochs)),
        ("batch_size", j => Number(j.Request.BatchSize)),
        ("learning_rate", j => Number(j.Request.LearningRate)),
        ("schedule", j => Text(j.Request.Schedule)),
        ("momentum", j => Number(j.Request.Momentum)),
        ("weight_decay", j => Number(j.Request.WeightDecay)),
        ("shift", j => Number(j.Request.Shift)),
        ("flip", j => Bool(j.Request.Flip)),
        ("label_smoothing", j => Number(j.Request.LabelSmoothing)),
        ("image_size", j => Number(j.Request.ImageSize)),
        ("seed", j => Number(j.Request.Seed)),
        ("max_train_images", j => Number(j.Request.MaxTrainImages)),
        ("max_test_images", j => Number(j.Request.MaxTestImages)),
        ("activate", j => Bool(j.Request.Activate)),
        ("requested_device", j => Text(j.Request.Device)),
        ("epochs_completed", j => Number(j.Epochs.Count)),
        ("final_train_loss", j => Number(j.Epochs.Count > 0 ? j.Epochs[^1].TrainLoss : null)),
        ("final_train_accuracy", j => Number(j.Epochs.Count > 0 ? j.Epochs[^1].TrainAccuracy : null)),
        ("final_test_accuracy", j => Number(j.Epochs.Count > 0 ? j.Epochs[^1].TestAccuracy : null)),
        ("best_test_accuracy", j => Number(Best(j)?.TestAccuracy)),
        ("best_epoch", j => Number(Best(j)?.Epoch)),
        ("resumed_after_epoch", j => Number(j.ResumedAfterEpoch)),
        ("created_at", j => Time(j.CreatedAt)),
        ("started_at", j => Time(j.StartedAt)),
        ("finished_at", j => Time(j.FinishedAt)),
        ("duration_seconds", j => Number(j is { StartedAt: { } s, FinishedAt: { } f } ? Math.Round((f - s).TotalSeconds, 3) : null)),
        ("device", j => Text(j.Device)),
        ("worker", j => Text(j.Worker)),
        ("warnings", j => Text(j.Warnings is { Count: > 0 } w ? string.Join(WarningSeparator, w) : null)),
        ("error", j => Text(j.Error)),
        ("sweep_id", j => Text(j.Request.SweepId)),
        ("trial", j => Number(j.Request.Trial)),
        ("stop_reason", j => Text(j.StopReason)),
    ];

    /// <summary>The column names, in order.</summary>
    public static IReadOnlyList<string> Header { get; } = [.. Columns.Select(c => c.Name)];

    /// <summary>Appends the header row (CRLF-terminated).</summary>
    public static void AppendHeader(StringBuilder row)
    {
        for (var i = 0; i < Columns.Length; i++)
        {
            row.Append(i == 0 ? "" : ",").Append(Columns[i].Name);
        }

        row.Append("\r\n");
    }

    /// <summary>Appends <paramref name="job"/>'s row (CRLF-terminated).</summary>
    public static void AppendRow(StringBuilder row, JobSnapshot job)
    {
        for (var i = 0; i < Columns.Length; i++)
        {
            if (i > 0)
            {
                row.Append(',');
            }

            AppendField(row, Columns[i].Value(job));
        }

        row.Append("\r\n");
    }

    /// <summary>A whole table (header and rows) as one string: for the document's example and for tests, not for responses.</summary>
    public static string Table(IEnumerable<JobSnapshot> jobs)
    {
        var text = new StringBuilder();
        AppendHeader(text);
        foreach (var job in jobs)
        {
            AppendRow(text, job);
        }

        return text.ToString();
    }

    /// <summary>
    /// Whether <paramref name="request"/> asks for CSV by its Accept header: <c>text/csv</c> acceptable (q &gt; 0) and
    /// ranked above an explicit <c>application/json</c> (wildcards do not count: a browser's <c>*/*</c> still gets JSON).
    /// </summary>
    public static bool AcceptsCsv(HttpRequest request)
    {
        double csv = 0, json = 0;
        foreach (var type in request.GetTypedHeaders().Accept)
        {
            var quality = type.Quality ?? 1;
            if (type.MediaType.Equals(MediaType, StringComparison.OrdinalIgnoreCase))
            {
                csv = Math.Max(csv, quality);
            }
            else if (type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
            {
                json = Math.Max(json, quality);
            }
        }

        return csv > 0 && csv > json;
    }

    private static EpochMetrics? Best(JobSnapshot job)
    {
        EpochMetrics? best = null;
        foreach (var epoch in job.Epochs)
        {
            if (best is null || epoch.TestAccuracy > best.TestAccuracy)
            {
                best = epoch; // the first epoch that reached the highest accuracy
            }
        }

        return best;
    }

    private static void AppendField(StringBuilder row, Cell cell)
    {
        if (string.IsNullOrEmpty(cell.Value))
        {
            return;
        }

        var value = cell.IsText && Array.IndexOf(FormulaStarts, cell.Value[0]) >= 0 ? "'" + cell.Value : cell.Value;
        if (value.AsSpan().IndexOfAny(NeedsQuotes) < 0)
        {
            row.Append(value);
            return;
        }

        row.Append('"').Append(value.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
    }

    private readonly record struct Cell(string? Value, bool IsText);

    private static Cell Text(string? value) => new(value, true);

    private static Cell Number(double? value) => new(value?.ToString(CultureInfo.InvariantCulture), false);

    private static Cell Number(long? value) => new(value?.ToString(CultureInfo.InvariantCulture), false);

    private static Cell Bool(bool value) => new(value ? "true" : "false", false);

    private static Cell Time(DateTimeOffset? at) =>
        new(at?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture), false);
}

/// <summary>
/// Streams the runs table: the header, then the rows of the first page and, when <c>next</c> is given, of every
/// following page it reads (one page of at most <see cref="JobQuery.MaxLimit"/> records in memory at a
/// time, flushed after each page). The first page is read before anything is sent, so a store that cannot be read is
/// still a ProblemDetails; a later page that fails cuts the response off (the client sees an incomplete body, not a
/// short table that looks whole).
/// </summary>
public sealed class RunsCsvResult(JobPage first, Func<JobCursor, JobPage>? next, string fileName = RunsCsv.FileName) : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
{
    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => RunsCsv.ContentType;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        var cancellation = httpContext.RequestAborted;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = RunsCsv.ContentType;
        response.Headers.ContentDisposition = $"attachment; filename=\"{fileName}\"";

        await using var writer = new StreamWriter(response.Body, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 16 * 1024, leaveOpen: true);
        var row = new StringBuilder(1024);
        RunsCsv.AppendHeader(row);
        await writer.WriteAsync(row, cancellation);
        for (var page = first; ; )
        {
            foreach (var job in page.Items)
            {
                row.Clear();
                RunsCsv.AppendRow(row, job);
                await writer.WriteAsync(row, cancellation);
            }

            await writer.FlushAsync(cancellation);
            if (next is null || JobCursor.Parse(page.NextCursor) is not { } after)
            {
                return;
            }

            page = next(after);
        }
    }
}
