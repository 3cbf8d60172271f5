using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>The dashboard's runs table: filtered by text, sorted by a metric, and downloaded whole as CSV.</summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class RunsTableDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    [Fact]
    public async Task Runs_are_filtered_sorted_by_best_accuracy_and_downloaded_as_CSV()
    {
        var store = fixture.Factory.Services.GetRequiredService<ITrainingJobStore>();
        var now = DateTimeOffset.UtcNow;
        string Finished(string model, string recipe, params double[] accuracies)
        {
            var settings = new TrainSettings("fashion-mnist", accuracies.Length, 32, 0.05, 0, 0, 67, 0, "cpu", model, 64, 32, false, Recipe: recipe);
            var job = store.Create(settings);
            store.Update(job.JobId, j => j with
            {
                Status = JobStatus.Succeeded,
                StartedAt = now.AddMinutes(-5),
                FinishedAt = now.AddMinutes(-4),
                Epochs = [.. accuracies.Select((a, i) => new EpochMetrics(i + 1, 1.0 / (i + 1), a, a, 100, 1))],
            });
            return job.JobId;
        }

        var low = Finished("runs-low", "d2l", 0.40, 0.50);
        var best = Finished("runs-best", "robust", 0.70, 0.90, 0.85); // best 0.90, final 0.85
        var mid = Finished("runs-mid", "robust", 0.60, 0.88); // best and final 0.88

        var (page, errors) = await fixture.OpenAsync("/#/runs");
        var rows = page.Locator("#jobs-table tbody tr");
        await Expect(rows).ToHaveCountAsync(3, new() { Timeout = 60_000 });

        await page.Locator("#jobs-sort").SelectOptionAsync("best");
        await Expect(rows.First).ToHaveAttributeAsync("data-job-id", best);
        await Expect(rows.First.Locator("td.best")).ToHaveTextAsync("90.0%");
        await page.Locator("#jobs-sort").SelectOptionAsync("final");
        await Expect(rows.First).ToHaveAttributeAsync("data-job-id", mid);
        await Expect(rows.Last).ToHaveAttributeAsync("data-job-id", low);

        await page.Locator("#jobs-filter").FillAsync("robust");
        await Expect(rows).ToHaveCountAsync(2);
        await page.Locator("#jobs-filter").FillAsync("robust runs-best");
        await Expect(rows).ToHaveCountAsync(1);
        await page.Locator("#jobs-filter").FillAsync("no-such-run");
        await Expect(rows).ToHaveCountAsync(0);
        await Expect(page.Locator("#jobs-none-match")).ToBeVisibleAsync();
        await page.Locator("#jobs-filter").FillAsync("");
        await Expect(rows).ToHaveCountAsync(3);

        var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#jobs-csv").ClickAsync());
        Assert.Equal("nin-runs.csv", download.SuggestedFilename);
        var path = await download.PathAsync();
        var lines = (await File.ReadAllTextAsync(path!)).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("job_id,status,", lines[0], StringComparison.Ordinal);
        Assert.Equal(4, lines.Length); // header and the three runs
        Assert.Contains(lines, l => l.StartsWith(best + ",Succeeded,runs-best,", StringComparison.Ordinal));
        await DashboardFixture.ScreenshotAsync(page, "runs-table");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
