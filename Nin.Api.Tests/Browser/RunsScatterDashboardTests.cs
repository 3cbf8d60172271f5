using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The Runs view's scatter: one point per run the filter shows, the chosen metric against the chosen hyperparameter
/// (read back from Chart.js through <c>window.ninDashboard.runScatter</c>), a log axis when the values span more than
/// 10×, the same figures in its table, and a click on a point opening that run.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class RunsScatterDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private sealed record Point(string Id, double X, double Y);

    private static async Task<Point[]> PointsAsync(IPage page) =>
        JsonSerializer.Deserialize<Point[]>(
            await page.EvaluateAsync<string>("() => JSON.stringify(window.ninDashboard.runScatter.data.datasets[0].data.map(p => ({ id: p.id, x: p.x, y: p.y })))"),
            new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

    [Fact]
    public async Task The_scatter_has_one_point_per_run_at_its_metric_and_hyperparameter_and_follows_the_selectors_and_the_filter()
    {
        var store = fixture.Factory.Services.GetRequiredService<ITrainingJobStore>();
        var now = DateTimeOffset.UtcNow;
        string Finished(string model, double learningRate, int batchSize, params (double Loss, double Accuracy)[] epochs)
        {
            var settings = new TrainSettings("fashion-mnist", epochs.Length, batchSize, learningRate, 0.9, 1e-4, 67, 0, "cpu", model, 64, 32, false, Recipe: "robust");
            var job = store.Create(settings);
            store.Update(job.JobId, j => j with
            {
                Status = JobStatus.Succeeded,
                StartedAt = now.AddMinutes(-5),
                FinishedAt = now.AddMinutes(-4),
                Epochs = [.. epochs.Select((e, i) => new EpochMetrics(i + 1, e.Loss, e.Accuracy - 0.02, e.Accuracy, 100, 1))],
            });
            return job.JobId;
        }

        var slow = Finished("lr-slow", 0.001, 32, (2.2, 0.31), (1.9, 0.42), (1.7, 0.48));
        var good = Finished("lr-good", 0.01, 64, (1.1, 0.62), (0.7, 0.78), (0.55, 0.83));
        var fast = Finished("lr-fast", 0.1, 128, (1.6, 0.55), (1.2, 0.71), (1.3, 0.66)); // best 0.71, final 0.66

        var (page, errors) = await fixture.OpenAsync("/#/runs");
        await Expect(page.Locator("#jobs-table tbody tr")).ToHaveCountAsync(3, new() { Timeout = 60_000 });
        var figure = page.Locator("#scatter-figure");
        await Expect(figure).ToHaveAttributeAsync("data-points", "3");

        // Best test accuracy against the learning rate (the defaults): 0.001–0.1 spans 100×, so the x axis is a log one.
        Assert.Equal("best", await page.Locator("#scatter-metric").InputValueAsync());
        Assert.Equal("learningRate", await page.Locator("#scatter-param").InputValueAsync());
        var points = (await PointsAsync(page)).ToDictionary(p => p.Id);
        Assert.Equal(3, points.Count);
        Assert.Equal((0.001, 0.48), (points[slow].X, points[slow].Y));
        Assert.Equal((0.01, 0.83), (points[good].X, points[good].Y));
        Assert.Equal((0.1, 0.71), (points[fast].X, points[fast].Y));
        Assert.Equal("logarithmic", await page.EvaluateAsync<string>("() => window.ninDashboard.runScatter.scales.x.type"));
        await Expect(page.Locator("#scatter-chart")).ToHaveAttributeAsync("aria-label", "best test accuracy against learning rate: 3 points, listed in the table below");
        // The same figures as a table, lowest learning rate first.
        var table = page.Locator("#scatter-table tbody tr");
        await Expect(table).ToHaveCountAsync(3);
        await Expect(table.First).ToHaveAttributeAsync("data-job-id", slow);
        await Expect(table.First.Locator("td")).ToHaveTextAsync(["0.001", "48.0%"]);

        // Final test accuracy: the fast run's point drops to its last epoch.
        await page.Locator("#scatter-metric").SelectOptionAsync("final");
        await page.WaitForFunctionAsync("id => window.ninDashboard.runScatter.data.datasets[0].data.find(p => p.id === id)?.y === 0.66", fast);

        // Against the batch size (32–128 is 4×: a linear axis), final train loss.
        await page.Locator("#scatter-param").SelectOptionAsync("batchSize");
        await page.Locator("#scatter-metric").SelectOptionAsync("loss");
        await page.WaitForFunctionAsync("() => window.ninDashboard.runScatter.scales.x.type === 'linear'");
        points = (await PointsAsync(page)).ToDictionary(p => p.Id);
        Assert.Equal((32.0, 1.7), (points[slow].X, points[slow].Y));
        Assert.Equal((64.0, 0.55), (points[good].X, points[good].Y));
        Assert.Equal((128.0, 1.3), (points[fast].X, points[fast].Y));
        await Expect(page.Locator("#scatter-chart")).ToHaveAttributeAsync("aria-label", "final train loss against batch size: 3 points, listed in the table below");

        // The filter's runs only.
        await page.Locator("#jobs-filter").FillAsync("lr-good");
        await Expect(figure).ToHaveAttributeAsync("data-points", "1");
        Assert.Equal([good], (await PointsAsync(page)).Select(p => p.Id));
        await page.Locator("#jobs-filter").FillAsync("");
        await Expect(figure).ToHaveAttributeAsync("data-points", "3");

        // The picture for the README: best test accuracy against the learning rate, two runs' curves compared below.
        await page.Locator("#scatter-param").SelectOptionAsync("learningRate");
        await page.Locator("#scatter-metric").SelectOptionAsync("best");
        await page.Locator($"#jobs-table tr[data-job-id='{good}'] input.compare").CheckAsync();
        await page.Locator($"#jobs-table tr[data-job-id='{fast}'] input.compare").CheckAsync();
        await Expect(page.Locator("#compare")).ToBeVisibleAsync();
        await page.WaitForFunctionAsync("() => window.ninDashboard.runScatter.scales.x.type === 'logarithmic'");
        await page.Locator("#jobs").ScreenshotAsync(new() { Path = Path.Combine(DashboardFixture.Screenshots, "runs-scatter.png") });

        // A click on a point opens its run.
        var at = await page.EvaluateAsync<double[]>("""
            id => {
              const chart = window.ninDashboard.runScatter;
              const i = chart.data.datasets[0].data.findIndex(p => p.id === id);
              const el = chart.getDatasetMeta(0).data[i];
              chart.canvas.scrollIntoView({ block: "center" });
              const box = chart.canvas.getBoundingClientRect();
              return [box.left + el.x, box.top + el.y];
            }
            """, good);
        await page.Mouse.ClickAsync((float)at[0], (float)at[1]);
        await page.WaitForFunctionAsync("p => document.body.dataset.route === p", $"/runs/{good}");
        await Expect(page.Locator("#live-id")).ToHaveTextAsync(good);
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
