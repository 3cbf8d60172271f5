using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// GET /train?format=csv, the runs table: one RFC 4180 row per run (read back with a parser of its own here), the values
/// GET /train/{id} shows, quoting and the formula guard, every matching run streamed page by page, and 400 for a format
/// it does not have.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class RunsTableTests
{
    /// <summary>Columns a user of the table relies on, by name (written out here, not taken from the code under test).</summary>
    private static readonly string[] Expected =
    [
        "job_id", "status", "model_name", "model_version", "dataset", "recipe", "architecture", "epochs", "batch_size",
        "learning_rate", "schedule", "momentum", "weight_decay", "shift", "flip", "label_smoothing", "image_size", "seed",
        "max_train_images", "max_test_images", "activate", "requested_device", "epochs_completed", "final_train_loss",
        "final_train_accuracy", "final_test_accuracy", "best_test_accuracy", "best_epoch", "resumed_after_epoch",
        "created_at", "started_at", "finished_at", "duration_seconds", "device", "worker", "warnings", "error", "sweep_id", "trial",
        "stop_reason",
    ];

    [Fact]
    public async Task A_finished_run_has_one_row_with_the_values_its_snapshot_shows()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var jobId = await PostAsync(client, Tiny("runs-table", epochs: 2));
        var job = await FinishedAsync(client, jobId);
        Assert.Equal(JobStatus.Succeeded, job.Status);
        Assert.Equal(2, job.Epochs.Count);

        using var response = await client.GetAsync(new Uri("/train?format=csv", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        Assert.Equal("attachment; filename=\"nin-runs.csv\"", Assert.Single(response.Content.Headers.GetValues("Content-Disposition")));
        Assert.False(response.Headers.Contains("Nin-Next-Cursor"));
        var text = await response.Content.ReadAsStringAsync();
        var rows = Rows(text);
        var row = Assert.Single(rows);

        Assert.Equal(jobId, row["job_id"]);
        Assert.Equal("Succeeded", row["status"]);
        Assert.Equal("runs-table", row["model_name"]);
        Assert.Equal(job.ModelVersion!.Value.ToString(CultureInfo.InvariantCulture), row["model_version"]);
        Assert.Equal(job.Request.Dataset, row["dataset"]);
        Assert.Equal(job.Request.Recipe, row["recipe"]);
        Assert.Equal(job.Request.Architecture, row["architecture"]);
        Assert.Equal("2", row["epochs"]);
        Assert.Equal("32", row["batch_size"]);
        Assert.Equal("67", row["image_size"]);
        Assert.Equal("64", row["max_train_images"]);
        Assert.Equal("32", row["max_test_images"]);
        Assert.Equal(job.Request.LearningRate, Double(row["learning_rate"]));
        Assert.Equal(job.Request.Momentum, Double(row["momentum"]));
        Assert.Equal(job.Request.WeightDecay, Double(row["weight_decay"]));
        Assert.Equal(job.Request.Schedule, row["schedule"]);
        Assert.Equal(job.Request.Flip ? "true" : "false", row["flip"]);
        Assert.Equal(job.Request.Seed.ToString(CultureInfo.InvariantCulture), row["seed"]);
        Assert.Equal(job.Request.Device, row["requested_device"]);

        Assert.Equal("2", row["epochs_completed"]);
        Assert.Equal(job.Epochs[^1].TrainLoss, Double(row["final_train_loss"]));
        Assert.Equal(job.Epochs[^1].TrainAccuracy, Double(row["final_train_accuracy"]));
        Assert.Equal(job.Epochs[^1].TestAccuracy, Double(row["final_test_accuracy"]));
        var best = job.Epochs.First(e => e.TestAccuracy == job.Epochs.Max(x => x.TestAccuracy));
        Assert.Equal(best.TestAccuracy, Double(row["best_test_accuracy"]));
        Assert.Equal(best.Epoch.ToString(CultureInfo.InvariantCulture), row["best_epoch"]);

        Assert.Equal(job.CreatedAt, Time(row["created_at"]));
        Assert.Equal(job.StartedAt, Time(row["started_at"]));
        Assert.Equal(job.FinishedAt, Time(row["finished_at"]));
        Assert.EndsWith("Z", row["created_at"], StringComparison.Ordinal);
        Assert.Equal((job.FinishedAt!.Value - job.StartedAt!.Value).TotalSeconds, Double(row["duration_seconds"]), 3);
        Assert.Equal(job.Device, row["device"]);
        Assert.Equal(job.Worker, row["worker"]);
        Assert.Equal(string.Join(" | ", job.Warnings ?? []), row["warnings"]);
        Assert.Equal("", row["error"]);

        // Content negotiation: Accept: text/csv without format is the same table; format wins over Accept; a client
        // that ranks JSON at least as high gets JSON.
        Assert.Equal(text, await BodyAsync(client, "/train", "text/csv", "text/csv"));
        Assert.Equal(text, await BodyAsync(client, "/train", "application/json;q=0.5, text/csv", "text/csv"));
        Assert.StartsWith("[", await BodyAsync(client, "/train?format=json", "text/csv", "application/json"), StringComparison.Ordinal);
        Assert.StartsWith("[", await BodyAsync(client, "/train", "text/csv, application/json", "application/json"), StringComparison.Ordinal);
        Assert.StartsWith("[", await BodyAsync(client, "/train", "*/*", "application/json"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fields_with_commas_quotes_and_line_breaks_are_quoted_and_formula_starts_are_defused()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var store = Store(factory);
        var job = store.Create(Settings("name, with \"quotes\"", "+cmd|' /C calc'!A0"));
        store.Update(job.JobId, j => j with
        {
            Status = JobStatus.Failed,
            FinishedAt = DateTimeOffset.UtcNow,
            Error = "=HYPERLINK(\"http://evil.example\",\"click\")",
            Warnings = ["did not learn: loss 2.303, \"stuck\"; try a lower rate", "line\r\nbreak"],
            Worker = "-host:1:2",
            Device = "@cpu",
        });
        var plain = store.Create(Settings("plain"));
        store.Update(plain.JobId, j => j with { Worker = "\tworker", Error = "a - b = c" });

        var text = await BodyAsync(client, "/train?format=csv", null, "text/csv");
        Assert.Contains("\"name, with \"\"quotes\"\"\"", text, StringComparison.Ordinal); // RFC 4180: quoted, quotes doubled
        var rows = Rows(text);
        Assert.Equal(2, rows.Count);
        var bad = rows.Single(r => r["job_id"] == job.JobId);
        Assert.Equal("name, with \"quotes\"", bad["model_name"]); // starts with a letter: as it was
        Assert.Equal("'+cmd|' /C calc'!A0", bad["dataset"]);
        Assert.Equal("'=HYPERLINK(\"http://evil.example\",\"click\")", bad["error"]);
        Assert.Equal("did not learn: loss 2.303, \"stuck\"; try a lower rate | line\r\nbreak", bad["warnings"]);
        Assert.Equal("'-host:1:2", bad["worker"]);
        Assert.Equal("'@cpu", bad["device"]);
        Assert.Equal("Failed", bad["status"]);
        Assert.Equal("0", bad["epochs_completed"]);
        Assert.Equal("", bad["final_test_accuracy"]);
        Assert.Equal("", bad["duration_seconds"]); // it never started
        Assert.Equal("0.1", bad["learning_rate"]); // invariant numbers: a point, never a comma

        var other = rows.Single(r => r["job_id"] == plain.JobId);
        Assert.Equal("'\tworker", other["worker"]);
        Assert.Equal("a - b = c", other["error"]); // only a formula start is defused, not a sign inside
        Assert.Equal("Queued", other["status"]);
        Assert.Equal("", other["finished_at"]);
    }

    [Fact]
    public async Task The_table_is_every_matching_run_read_a_page_at_a_time_or_the_page_asked_for()
    {
        var queries = new List<JobQuery>();
        using var factory = Factory();
        using var small = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s =>
            s.AddSingleton<ITrainingJobStore>(sp => new SmallPages(ActivatorUtilities.CreateInstance<FileTrainingJobStore>(sp), queries))));
        using var client = small.CreateClient();
        var store = small.Services.GetRequiredService<ITrainingJobStore>();
        var made = new List<JobSnapshot>();
        for (var i = 0; i < 11; i++)
        {
            var job = store.Create(Settings($"run-{i}"));
            made.Add(i % 3 == 0 ? store.Update(job.JobId, j => j with { Status = JobStatus.Succeeded, FinishedAt = DateTimeOffset.UtcNow })! : job);
        }

        var newestFirst = made.AsEnumerable().Reverse().Select(j => j.JobId).ToList();

        // No limit, no cursor: every run (the store reads pages of "MaxLimit", three records here), newest first, no next page.
        queries.Clear();
        using (var response = await client.GetAsync(new Uri("/train?format=csv", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.False(response.Headers.Contains("Link"));
            Assert.Equal(newestFirst, Rows(await response.Content.ReadAsStringAsync()).Select(r => r["job_id"]));
        }

        Assert.True(queries.Count >= 4, $"{queries.Count} reads of the store for 11 runs in pages of 3");
        Assert.All(queries, q => Assert.Equal(JobQuery.MaxLimit, q.Limit));

        // The same filter as JSON.
        var succeeded = Rows(await BodyAsync(client, "/train?format=csv&status=Succeeded", null, "text/csv"));
        Assert.Equal(newestFirst.Where((_, i) => (10 - i) % 3 == 0), succeeded.Select(r => r["job_id"]));
        Assert.All(succeeded, r => Assert.Equal("Succeeded", r["status"]));

        // Nothing matches: the header alone.
        var none = await BodyAsync(client, "/train?format=csv&status=Cancelled", null, "text/csv");
        Assert.Equal(string.Join(',', Expected) + "\r\n", none);

        // With a limit: the page JSON would be, and a next link that stays CSV.
        var seen = new List<string>();
        var url = "/train?format=csv&limit=4";
        for (var pages = 0; url is not null; pages++)
        {
            Assert.True(pages < 10, "more than 10 pages");
            using var response = await client.GetAsync(new Uri(url, UriKind.Relative));
            Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
            var page = Rows(await response.Content.ReadAsStringAsync());
            Assert.True(page.Count <= 4);
            seen.AddRange(page.Select(r => r["job_id"]));
            url = null;
            if (response.Headers.TryGetValues("Link", out var links))
            {
                var link = Assert.Single(links);
                url = link[(link.IndexOf('<', StringComparison.Ordinal) + 1)..link.IndexOf('>', StringComparison.Ordinal)];
                Assert.Contains("format=csv", url, StringComparison.Ordinal);
                Assert.Equal(4, page.Count);
            }
        }

        Assert.Equal(newestFirst, seen);
    }

    [Theory]
    [InlineData("?format=xml")]
    [InlineData("?format=CSV")]
    [InlineData("?format=")]
    [InlineData("?format=csv&limit=0")]
    [InlineData("?format=csv&cursor=not-a-cursor")]
    [InlineData("?format=csv&status=Sleeping")]
    public async Task An_unknown_format_or_a_bad_parameter_is_a_400_problem(string query)
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/train" + query, UriKind.Relative));
        await SecurityApiTests.AssertProblem(response, HttpStatusCode.BadRequest);
    }

    /// <summary>The "MaxLimit" pages the table reads are three records long, so a few runs span several pages.</summary>
    private sealed class SmallPages(ITrainingJobStore inner, List<JobQuery> queries) : ForwardingStore(inner)
    {
        public override JobPage List(JobQuery query)
        {
            lock (queries)
            {
                queries.Add(query);
            }

            return base.List(query.Limit == JobQuery.MaxLimit ? query with { Limit = 3 } : query);
        }
    }

    private static async Task<string> BodyAsync(HttpClient client, string url, string? accept, string expectedType)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(url, UriKind.Relative));
        if (accept is not null)
        {
            request.Headers.Accept.ParseAdd(accept);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {url} answered {response.StatusCode}: {text}");
        Assert.Equal(expectedType, response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Accept", response.Headers.Vary);
        return text;
    }

    private static double Double(string text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);

    private static DateTimeOffset Time(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    /// <summary>The table's rows by column name, after checking the header is the expected one and every row has as many fields.</summary>
    private static List<Dictionary<string, string>> Rows(string text)
    {
        var records = Parse(text);
        Assert.NotEmpty(records);
        Assert.Equal(Expected, records[0]);
        Assert.All(records, r => Assert.Equal(Expected.Length, r.Count));
        return [.. records.Skip(1).Select(r => Expected.Zip(r).ToDictionary(p => p.First, p => p.Second))];
    }

    /// <summary>
    /// RFC 4180, strictly: records end with CRLF (the last one too), a field is either unquoted (no comma, quote, CR or
    /// LF) or wholly quoted with its quotes doubled; anything else fails the test.
    /// </summary>
    internal static List<List<string>> Parse(string text)
    {
        var records = new List<List<string>>();
        var record = new List<string>();
        var field = new StringBuilder();
        var inQuotes = false;
        var wasQuoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (inQuotes)
            {
                if (c != '"')
                {
                    field.Append(c);
                }
                else if (i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else
                {
                    inQuotes = false;
                    Assert.True(i + 1 == text.Length || text[i + 1] is ',' or '\r', $"text after the closing quote at {i}: {Around(text, i)}");
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    Assert.True(field.Length == 0 && !wasQuoted, $"a quote inside an unquoted field at {i}: {Around(text, i)}");
                    inQuotes = wasQuoted = true;
                    break;
                case ',':
                    record.Add(field.ToString());
                    field.Clear();
                    wasQuoted = false;
                    break;
                case '\r':
                    Assert.True(i + 1 < text.Length && text[i + 1] == '\n', $"a CR without its LF at {i}: {Around(text, i)}");
                    record.Add(field.ToString());
                    field.Clear();
                    wasQuoted = false;
                    records.Add(record);
                    record = [];
                    i++;
                    break;
                case '\n':
                    Assert.Fail($"a bare LF outside quotes at {i}: {Around(text, i)}");
                    break;
                default:
                    field.Append(c);
                    break;
            }
        }

        Assert.False(inQuotes, "the text ends inside a quoted field");
        Assert.True(field.Length == 0 && record.Count == 0 && !wasQuoted, "the last record does not end with CRLF");
        return records;
    }

    private static string Around(string text, int i) => text[Math.Max(0, i - 20)..Math.Min(text.Length, i + 20)];
}
