using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>GET /train pages (limit, cursor, status); the hub answers with a bounded recent set; retention removes finished records, not their models; the gauges count, they do not list.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class JobPagingTests
{
    /// <summary>Records only (no run), oldest first; every third one finished.</summary>
    private static List<JobSnapshot> Records(ITrainingJobStore store, int count)
    {
        var made = new List<JobSnapshot>();
        for (var i = 0; i < count; i++)
        {
            var job = store.Create(Settings($"page-{i}"));
            if (i % 3 == 0)
            {
                job = store.Update(job.JobId, j => j with { Status = JobStatus.Succeeded, FinishedAt = DateTimeOffset.UtcNow })!;
            }

            made.Add(job);
        }

        return made;
    }

    internal static async Task<List<JobSnapshot>> AllPagesAsync(HttpClient client, string query, int limit)
    {
        var seen = new List<JobSnapshot>();
        var url = $"/train?limit={limit}{query}";
        for (var pages = 0; pages < 100; pages++)
        {
            using var response = await client.GetAsync(new Uri(url, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = (await response.Content.ReadFromJsonAsync<JobSnapshot[]>(TrainingApiTests.Json))!;
            Assert.True(page.Length <= limit, $"a page of {page.Length} for limit {limit}");
            seen.AddRange(page);
            if (!response.Headers.TryGetValues("Nin-Next-Cursor", out var cursors))
            {
                Assert.False(response.Headers.Contains("Link"));
                return seen;
            }

            Assert.Equal(limit, page.Length); // only a full page has a next one
            var link = Assert.Single(response.Headers.GetValues("Link"));
            Assert.EndsWith("rel=\"next\"", link, StringComparison.Ordinal);
            url = link[(link.IndexOf('<', StringComparison.Ordinal) + 1)..link.IndexOf('>', StringComparison.Ordinal)];
            Assert.Contains(Uri.EscapeDataString(cursors.Single()), url, StringComparison.Ordinal);
        }

        throw new InvalidOperationException("more than 100 pages");
    }

    [Fact]
    public async Task Jobs_page_newest_first_by_cursor_and_filter_by_status()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var made = Records(Store(factory), 11);
        var newestFirst = made.AsEnumerable().Reverse().Select(j => j.JobId).ToList();

        var all = await AllPagesAsync(client, "", 4);
        Assert.Equal(newestFirst, all.Select(j => j.JobId)); // every record once, in order, across 3 pages

        var finished = await AllPagesAsync(client, "&status=Succeeded", 2);
        Assert.Equal(newestFirst.Where((_, i) => (10 - i) % 3 == 0), finished.Select(j => j.JobId));
        var several = await AllPagesAsync(client, "&status=queued,Succeeded", 50);
        Assert.Equal(11, several.Count);

        // Without a limit: the default page (50), newest first.
        var first = (await client.GetFromJsonAsync<JobSnapshot[]>(new Uri("/train", UriKind.Relative), TrainingApiTests.Json))!;
        Assert.Equal(newestFirst, first.Select(j => j.JobId));
    }

    [Theory]
    [InlineData("?limit=0")]
    [InlineData("?limit=501")]
    [InlineData("?cursor=not-a-cursor")]
    [InlineData("?status=Sleeping")]
    public async Task Bad_paging_parameters_are_400_problem_details(string query)
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/train" + query, UriKind.Relative));
        await SecurityApiTests.AssertProblem(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task The_hub_answers_SubscribeAll_with_the_recent_jobs_and_every_unfinished_one_not_the_whole_history()
    {
        using var factory = Factory(new() { ["Training:HubRecentJobs"] = "3" });
        _ = factory.Server;
        var store = Store(factory);
        var oldQueued = store.Create(Settings("old-queued"));
        for (var i = 0; i < 6; i++)
        {
            var job = store.Create(Settings($"done-{i}"));
            store.Update(job.JobId, j => j with { Status = JobStatus.Succeeded, FinishedAt = DateTimeOffset.UtcNow });
        }

        await using var hub = factory.CreateHubConnection();
        await hub.StartAsync();
        var answer = await hub.InvokeAsync<IReadOnlyList<JobSnapshot>>(nameof(TrainingHub.SubscribeAll));
        Assert.Equal(4, answer.Count);
        Assert.Contains(answer, j => j.JobId == oldQueued.JobId);
        Assert.Equal(3, answer.Count(j => j.Status == JobStatus.Succeeded));
    }

    [Fact]
    public async Task Retention_removes_finished_records_and_their_folders_and_keeps_their_models_and_unfinished_jobs()
    {
        using var factory = Factory(new()
        {
            ["Training:FinishedJobRetention"] = "01:00:00",
            ["Training:RetentionSweepInterval"] = "00:00:00.200",
        });
        using var client = factory.CreateClient();
        var store = Store(factory);
        var models = factory.Services.GetRequiredService<ModelStore>();
        ServingFixture.AddRandom(models, "kept", seed: 3);

        // Finished just now (kept) until its file is seen on disk; only then aged past the retention, so the sweep,
        // which runs every 200 ms, cannot remove it before the test has looked.
        var old = store.Create(Settings("kept"));
        store.Update(old.JobId, j => j with { Status = JobStatus.Succeeded, FinishedAt = DateTimeOffset.UtcNow, ModelName = "kept", ModelVersion = 1 });
        var recent = store.Create(Settings("recent"));
        store.Update(recent.JobId, j => j with { Status = JobStatus.Failed, FinishedAt = DateTimeOffset.UtcNow, Error = "x" });
        var queued = store.Create(Settings("queued"));
        Assert.True(File.Exists(Path.Combine(store.JobDirectory(old.JobId), FileTrainingJobStore.FileName)));
        store.Update(old.JobId, j => j with { FinishedAt = DateTimeOffset.UtcNow.AddHours(-2) });

        await WaitUntilAsync(() => store.Get(old.JobId) is null, TimeSpan.FromSeconds(15), "the old finished record removed");
        using (var gone = await client.GetAsync(new Uri($"/train/{old.JobId}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        Assert.False(Directory.Exists(store.JobDirectory(old.JobId)));
        Assert.NotNull(store.Get(recent.JobId));
        Assert.NotNull(store.Get(queued.JobId));
        Assert.NotNull(models.Find("kept", 1)); // the model it produced stays
    }

    /// <summary>Counts how the gauges read the records.</summary>
    private sealed class CountingStore(ITrainingJobStore inner) : ForwardingStore(inner)
    {
        public int Lists;
        public int Counts;

        public override JobPage List(JobQuery query)
        {
            Interlocked.Increment(ref Lists);
            return base.List(query);
        }

        public override IReadOnlyDictionary<JobStatus, int> CountByStatus()
        {
            Interlocked.Increment(ref Counts);
            return base.CountByStatus();
        }
    }

    [Fact]
    public async Task The_job_gauges_count_by_status_without_listing_records()
    {
        CountingStore? store = null;
        using var factory = Factory();
        using var counted = factory.WithWebHostBuilder(b => b.ConfigureTestServices(s =>
            s.AddSingleton<ITrainingJobStore>(sp => store = new CountingStore(ActivatorUtilities.CreateInstance<FileTrainingJobStore>(sp)))));
        using var client = counted.CreateClient();
        Records(counted.Services.GetRequiredService<ITrainingJobStore>(), 6);
        var listsBefore = store!.Lists;

        var metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        double Gauge(string status) => double.Parse(metrics.Split('\n')
            .Single(l => l.StartsWith("nin_training_jobs{", StringComparison.Ordinal) && l.Contains($"status=\"{status}\"", StringComparison.Ordinal))
            .Split('}')[1].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(2, Gauge("Succeeded"));
        Assert.Equal(4, Gauge("Queued"));
        Assert.True(store.Counts >= 1);
        Assert.Equal(listsBefore, store.Lists);
    }
}
