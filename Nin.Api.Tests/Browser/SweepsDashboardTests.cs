using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using Nin.Api.Datasets;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The Sweeps views against the real backend: a learning-rate grid started from the form on a small picture set (the
/// setup of SweepApiTests: a hopeless and a diverging rate after two that learn), its trials appearing and finishing on
/// the sweep's page with the early-stopped ones' reasons, the best marked as the server names it, the scatter and the
/// curves with a point and a line per trial, the trials' CSV, and the list showing the finished sweep. The metric is
/// the training loss: on this set the test accuracy stays at chance for the first epochs on a CPU, so the median rule
/// has nothing to tell the trials apart by after one epoch, while the loss does (1.09 and 1.11 for the two good rates,
/// 1.17 for 1e-6 and 1.28 for 10 after epoch 1, seed 1).
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class SweepsDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    /// <summary>Three shapes, 30 each at 24 px: the robust recipe learns them within a few epochs of a few seconds.</summary>
    internal static async Task<string> UploadShapesAsync(HttpClient client, string name)
    {
        using var form = TestZips.Form(ShapePictures.Zip(ShapePictures.Make([0, 3, 5], perClass: 30, side: 24, seed: 3)), name, fields: ("size", "24"));
        using var response = await client.PostAsync(new Uri("/datasets", UriKind.Relative), form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<UploadedDataset>(TrainingApiTests.Json))!.Id;
    }

    [Fact]
    public async Task A_sweep_started_from_the_form_shows_its_trials_finish_the_stopped_ones_with_their_reason_and_the_best_marked()
    {
        using var client = fixture.Factory.CreateClient();
        var dataset = await UploadShapesAsync(client, "sweep shapes");
        var (page, errors) = await fixture.OpenAsync("/#/sweeps");
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await Expect(page.Locator($"#sw-dataset option[value='{dataset}']")).ToHaveCountAsync(1, new() { Timeout = 30_000 });

        // The form as a user fills it: the dataset (its own recipe preset), four learning rates, four epochs, the median
        // rule after one epoch; batch size and seed under "More".
        await page.Locator("#sw-dataset").SelectOptionAsync(dataset);
        await page.Locator("#sw-learningRate").FillAsync("0.1, 0.05, 1e-6, 10");
        await page.Locator("#sw-epochs").FillAsync("4");
        await page.Locator("#sw-metric").SelectOptionAsync("trainLoss");
        await page.Locator("#sw-rule").SelectOptionAsync("median");
        await page.Locator("#sweep-form details > summary").ClickAsync();
        await page.Locator("#sw-batchSize-base").FillAsync("12");
        await page.Locator("#sw-seed").FillAsync("1");
        await page.Locator("#sw-grace").FillAsync("1");
        await page.Locator("#sw-modelName").FillAsync("sweep-ui");
        await page.Locator("#sweep-submit").ClickAsync();

        // Its page: four trials at once, then each one finishing while the page refreshes by itself.
        await page.WaitForFunctionAsync("() => document.body.dataset.route.startsWith('/sweeps/')");
        var sweepId = await page.Locator("#sweep-body").GetAttributeAsync("data-sweep-id", new() { Timeout = 30_000 });
        Assert.Equal($"/sweeps/{sweepId}", await page.EvaluateAsync<string>("() => document.body.dataset.route"));
        var rows = page.Locator("#sweep-trials-table tbody tr");
        await Expect(rows).ToHaveCountAsync(4);
        await Expect(page.Locator("#sweep-trials-table thead th")).ToContainTextAsync(["Trial", "Run", "Learning rate", "Status"]);
        await Expect(page.Locator("#sweep-body")).Not.ToHaveAttributeAsync("data-status", "Running", new() { Timeout = 300_000 });
        await Expect(page.Locator("#sweep-status")).ToHaveTextAsync("Succeeded");
        await Expect(page.Locator("#sweep-cancel")).ToBeHiddenAsync();

        // What the page shows is what the server says.
        var sweep = JsonNode.Parse(await client.GetStringAsync(new Uri($"/sweeps/{sweepId}", UriKind.Relative)))!;
        var trials = sweep["trials"]!.AsArray();
        for (var i = 0; i < 4; i++)
        {
            var trial = trials[i]!;
            var row = rows.Nth(i);
            await Expect(row).ToHaveAttributeAsync("data-job-id", (string)trial["jobId"]!);
            await Expect(row).ToHaveAttributeAsync("data-status", (string)trial["status"]!);
            await Expect(row.Locator("td.metric")).ToHaveTextAsync(Figure(trial["metric"]));
            await Expect(row.Locator("td").Nth(3)).ToContainTextAsync($"{(int)trial["epochsCompleted"]!}/{(int)trial["epochs"]!}");
            if ((string?)trial["stopReason"] is { Length: > 0 } reason)
            {
                await Expect(row.Locator(".status")).ToHaveTextAsync("Stopped");
                await Expect(row.Locator(".stop-reason")).ToHaveTextAsync(reason);
            }
        }

        Assert.True(trials.Any(t => (string?)t!["status"] == "Stopped"), sweep.ToJsonString()); // the hopeless and diverging rates are stopped early
        await Expect(page.Locator("#sweep-metric")).ToHaveTextAsync("train loss (lower is better)");
        var best = (int)sweep["best"]!["trial"]!;
        await Expect(page.Locator("#sweep-trials-table tbody tr.best")).ToHaveCountAsync(1);
        await Expect(page.Locator("#sweep-trials-table tbody tr.best")).ToHaveAttributeAsync("data-trial", best.ToString(CultureInfo.InvariantCulture));
        await Expect(page.Locator("#sweep-trials-table tbody tr.best th")).ToContainTextAsync("best");
        await Expect(page.Locator("#sweep-best")).ToContainTextAsync($"trial {best}: {Figure(sweep["best"]!["metric"])}");

        // The scatter: a point per trial at its learning rate and last metric, the best one a star; the curves: a line per trial.
        await Expect(page.Locator("#sweep-scatter figure")).ToHaveAttributeAsync("data-points", "4");
        var points = await page.EvaluateAsync<double[][]>("() => window.ninDashboard.sweepsView.scatter.data.datasets[0].data.map(p => [p.x, p.y])");
        Assert.Equal(trials.Select(t => new[] { (double)t!["parameters"]!["learningRate"]!, (double)t["metric"]! }), points);
        Assert.Equal("star", await page.EvaluateAsync<string>($"() => window.ninDashboard.sweepsView.scatter.data.datasets[0].pointStyle[{best - 1}]"));
        await Expect(page.Locator("#sweep-curves")).ToHaveAttributeAsync("data-lines", "4");
        await DashboardFixture.ScreenshotAsync(page, "sweep");

        // A stopped trial's run: Stopped, its events end with the rule's reason, and it links back to its sweep.
        var stopped = trials.First(t => (string?)t!["status"] == "Stopped")!;
        await rows.Nth((int)stopped["trial"]! - 1).Locator("a.run-link").ClickAsync();
        await Expect(page.Locator("#live-status")).ToHaveTextAsync("Stopped");
        await Expect(page.Locator("#live-cancel")).ToBeHiddenAsync();
        await Expect(page.Locator("#live-events li").Last).ToContainTextAsync((string)stopped["stopReason"]!);
        await Expect(page.Locator("#live-sweep")).ToHaveTextAsync($"Trial {(int)stopped["trial"]!} of sweep {sweepId![..8]}");
        await page.Locator("#live-sweep").ClickAsync();
        await page.WaitForFunctionAsync("p => document.body.dataset.route === p", $"/sweeps/{sweepId}");
        await Expect(rows).ToHaveCountAsync(4);

        // The trials' CSV: a row per trial.
        var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#sweep-csv").ClickAsync());
        Assert.Equal($"nin-sweep-{sweepId}.csv", download.SuggestedFilename);
        var lines = (await File.ReadAllTextAsync((await download.PathAsync())!)).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length);
        Assert.All(lines.Skip(1), l => Assert.Contains(sweepId!, l, StringComparison.Ordinal));

        // The list: the finished sweep with its trials and best.
        await page.Locator("#sweep a[href='#/sweeps']").ClickAsync();
        var listed = page.Locator($"#sweeps-table tbody tr[data-sweep-id='{sweepId}']");
        await Expect(listed).ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(listed.Locator("td.trials")).ToHaveTextAsync("4/4");
        await Expect(listed.Locator("td.best")).ToHaveTextAsync($"{Figure(sweep["best"]!["metric"])} (trial {best})");

        // The Runs view lists the trials as runs, each linking back to its sweep.
        await DashboardFixture.GoToAsync(page, "#/runs");
        await Expect(page.Locator($"#jobs-table a.sweep-link[href='#/sweeps/{sweepId}']")).ToHaveCountAsync(4);
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    /// <summary>A loss as the page shows it: three significant figures (JavaScript's toPrecision(3), trailing zeros dropped).</summary>
    [Fact]
    public async Task A_refused_sweep_marks_the_fields_the_server_names_and_a_running_one_is_cancelled_from_its_page()
    {
        var (page, errors) = await fixture.OpenAsync("/#/sweeps");
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });

        // 50 is no learning rate (the server's 400 names space.learningRate); zero epochs none either (base.epochs).
        await page.Locator("#sw-learningRate").FillAsync("0.1, 50");
        await page.Locator("#sw-epochs").FillAsync("0");
        await page.Locator("#sweep-submit").ClickAsync();
        await Expect(page.Locator("#sweep-form-error")).ToContainTextAsync("space.learningRate");
        await Expect(page.Locator("#sw-learningRate")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.Locator("#sw-epochs")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.Locator("#sw-batchSize")).Not.ToHaveAttributeAsync("aria-invalid", "true");
        Assert.Equal("/sweeps", await page.EvaluateAsync<string>("() => document.body.dataset.route"));

        // Text that is not a list is caught before it is sent.
        await page.Locator("#sw-learningRate").FillAsync("fast, slow");
        await page.Locator("#sweep-submit").ClickAsync();
        await Expect(page.Locator("#sweep-form-error")).ToContainTextAsync("is not a list of numbers");

        // A long random sweep on Fashion-MNIST, cancelled from its page: the sweep and its unfinished trials end Cancelled.
        await page.Locator("#sw-dataset").SelectOptionAsync("fashion-mnist");
        await page.Locator("#sw-method").SelectOptionAsync("random");
        await page.Locator("#sw-learningRate").FillAsync("0.01 .. 0.2 log");
        await page.Locator("#sw-maxTrials").FillAsync("2");
        await page.Locator("#sw-epochs").FillAsync("50");
        await page.Locator("#sweep-form details > summary").ClickAsync();
        await page.Locator("#sw-imageSize").FillAsync("67");
        await page.Locator("#sw-maxTrainImages").FillAsync("4000");
        await page.Locator("#sw-maxTestImages").FillAsync("50");
        await page.Locator("#sw-modelName").FillAsync("sweep-cancel-ui");
        await page.Locator("#sweep-submit").ClickAsync();
        await page.WaitForFunctionAsync("() => document.body.dataset.route.startsWith('/sweeps/')");
        await Expect(page.Locator("#sweep-trials-table tbody tr")).ToHaveCountAsync(2);
        var rates = await page.Locator("#sweep-trials-table tbody tr td:nth-of-type(2)").AllTextContentsAsync();
        Assert.All(rates, r => Assert.InRange(double.Parse(r, CultureInfo.InvariantCulture), 0.01, 0.2));
        await Expect(page.Locator("#sweep-status")).ToHaveTextAsync("Running");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.Locator("#sweep-cancel").ClickAsync();
        await Expect(page.Locator("#sweep-status")).ToHaveTextAsync("Cancelled", new() { Timeout = 60_000 });
        await Expect(page.Locator("#sweep-cancel")).ToBeHiddenAsync();
        await Expect(page.Locator("#sweep-trials-table tbody tr[data-status='Cancelled']")).ToHaveCountAsync(2, new() { Timeout = 60_000 });
        var unexpected = errors.Where(e => !e.Contains("status of 400 (Bad Request)", StringComparison.Ordinal)).ToArray(); // the refused sweep's, on purpose
        Assert.True(unexpected.Length == 0, string.Join(Environment.NewLine, unexpected));
    }

    private static string Figure(JsonNode? value) =>
        value is null ? "–" : ((double)value).ToString("G3", CultureInfo.InvariantCulture);
}
