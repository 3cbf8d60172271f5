using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard keeps, per job, only what is at least as new as the revision it shows: events delivered out of order
/// (a late snapshot, a batch of a run already cancelled) change nothing, with no rule about which state may follow which.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class DashboardRevisionTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    // Hands a message to the page's hub handlers as if the server had sent it (the handlers the dashboard registered).
    private const string Deliver = """
        ([method, payload]) => { for (const handler of window.ninDashboard.hub._methods[method.toLowerCase()]) handler(payload); }
        """;

    private static object Snapshot(string id, string status, long revision, int epochs) => new
    {
        jobId = id,
        status,
        revision,
        request = new { dataset = "fashion-mnist", recipe = "d2l", epochs = 5, batchSize = 32 },
        device = "cpu",
        progress = new { epoch = epochs + 1, batch = 3, batches = 10 },
        epochs = Enumerable.Range(1, epochs).Select(e => new { epoch = e, trainLoss = 1.0 / e, trainAccuracy = 0.5, testAccuracy = 0.5, examplesPerSecond = 100.0, seconds = 1.0 }).ToArray(),
        modelName = (string?)null,
        modelVersion = (int?)null,
        error = (string?)null,
        createdAt = DateTimeOffset.UtcNow.AddDays(1), // newest: shown first
        startedAt = DateTimeOffset.UtcNow,
        finishedAt = (DateTimeOffset?)null,
        warnings = Array.Empty<string>(),
    };

    [Fact]
    public async Task Stale_snapshots_and_events_never_change_what_the_dashboard_shows()
    {
        var (page, errors) = await fixture.OpenAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        const string id = "feedbeef0001";
        var row = page.Locator($"#jobs-table tbody tr[data-job-id='{id}']");

        await page.EvaluateAsync(Deliver, new object[] { "JobUpdated", Snapshot(id, "Running", 5, 2) });
        await Expect(row).ToHaveAttributeAsync("data-status", "Running");

        // A snapshot from before (revision 3: still queued, no epochs) arrives late: ignored.
        await page.EvaluateAsync(Deliver, new object[] { "JobUpdated", Snapshot(id, "Queued", 3, 0) });
        await Task.Delay(300);
        await Expect(row).ToHaveAttributeAsync("data-status", "Running");
        await Expect(row.Locator("td").Nth(3)).ToHaveTextAsync("2/5");

        // The end (revision 6), then a batch and a snapshot of revision 5 that were overtaken by it: ignored.
        await page.EvaluateAsync(Deliver, new object[] { "JobFinished", new { jobId = id, status = "Cancelled", revision = 6 } });
        await Expect(row).ToHaveAttributeAsync("data-status", "Cancelled");
        await page.EvaluateAsync(Deliver, new object[] { "BatchProgress", new { jobId = id, epoch = 3, batch = 4, batches = 10, loss = 0.5, revision = 5 } });
        await page.EvaluateAsync(Deliver, new object[] { "JobUpdated", Snapshot(id, "Running", 5, 2) });
        await Task.Delay(300);
        await Expect(row).ToHaveAttributeAsync("data-status", "Cancelled");

        // A newer snapshot (the job requeued in Hangfire: revision 7) is shown, whatever its state.
        await page.EvaluateAsync(Deliver, new object[] { "JobUpdated", Snapshot(id, "Queued", 7, 2) });
        await Expect(row).ToHaveAttributeAsync("data-status", "Queued");
        Assert.Empty(errors);
    }
}
