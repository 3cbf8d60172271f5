using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>A model version's evaluation in the dashboard: heat map, per-class figures, gallery (with its class activation maps), and deleting a version.</summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed partial class EvaluationDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    [GeneratedRegex(@"Queued job (\S+)\.")]
    private static partial Regex QueuedJob();

    [GeneratedRegex("^(Succeeded|Failed|Cancelled)$")]
    private static partial Regex Finished();

    [Fact]
    public async Task Upload_then_train_from_the_form_then_curves_confusion_matrix_and_gallery()
    {
        var (page, errors) = await fixture.OpenAsync("/#/datasets");
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });

        // Three shape classes of 12 pictures each, and a file that is not an image.
        var pictures = Api.ShapePictures.Make(3, 12, 28, seed: 7);
        var zip = Api.TestZips.Build(pictures.Select((p, i) => ($"{p.Class}/{i:D3}.png", p.Png)).Append(($"{pictures[0].Class}/notes.txt", "not a picture"u8.ToArray())));
        await page.Locator("#upload-file").SetInputFilesAsync(new FilePayload { Name = "shapes.zip", MimeType = "application/zip", Buffer = zip });
        await page.Locator("#upload-name").FillAsync("shapes in the browser");
        await page.Locator("#upload-submit").ClickAsync();
        await Expect(page.Locator("#upload-state")).ToHaveTextAsync("Uploaded.", new() { Timeout = 60_000 });
        Assert.Equal(await page.Locator("#upload-progress").GetAttributeAsync("max"), (await page.EvaluateAsync<double>("() => document.getElementById('upload-progress').value")).ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Expect(page.Locator("#upload-classes tbody tr")).ToHaveCountAsync(3);
        await Expect(page.Locator("#upload-skipped li")).ToHaveCountAsync(1);
        await Expect(page.Locator("#upload-skipped li")).ToContainTextAsync($"{pictures[0].Class}/notes.txt");
        var id = await page.Locator("#upload-id").InnerTextAsync();
        Assert.StartsWith("u-", id, StringComparison.Ordinal);

        // The datasets table lists it (deletable, unlike the built-in ones); the training form has it chosen, with its
        // preset (robust), one link away.
        var datasetRow = page.Locator($"#datasets-table tr[data-dataset='{id}']");
        await Expect(datasetRow.Locator("td").First).ToHaveTextAsync("shapes in the browser");
        await Expect(datasetRow.Locator("button.delete")).ToHaveCountAsync(1);
        await Expect(page.Locator("#datasets-table tr[data-dataset='fashion-mnist'] button.delete")).ToHaveCountAsync(0);
        await Expect(page.Locator("#f-dataset")).ToHaveValueAsync(id);
        await Expect(page.Locator("#f-recipe")).ToHaveValueAsync("robust");
        await DashboardFixture.ScreenshotAsync(page, "upload-summary");
        await page.Locator("#upload-train").ClickAsync();
        await Expect(page.Locator("#f-dataset")).ToBeVisibleAsync();
        await Expect(page.Locator("#f-dataset")).ToHaveValueAsync(id);
        await DashboardFixture.FillTrainingFormAsync(page, new Dictionary<string, string> { ["epochs"] = "2", ["batchSize"] = "16", ["device"] = "cpu", ["modelName"] = "uploaded-shapes" });

        await page.Locator("#train-submit").ClickAsync();
        await Expect(page.Locator("#train-result")).ToHaveTextAsync(QueuedJob(), new() { Timeout = 60_000 });
        await Expect(page.Locator("#live-status")).ToHaveTextAsync(Finished(), new() { Timeout = 240_000 });
        if (await page.Locator("#live-status").InnerTextAsync() != "Succeeded")
        {
            // Say why, not only that it did not succeed.
            using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
            var jobId = QueuedJob().Match(await page.Locator("#train-result").InnerTextAsync()).Groups[1].Value;
            Assert.Fail($"job {jobId}: {await http.GetStringAsync(new Uri($"/train/{jobId}", UriKind.Relative))}");
        }

        await Expect(page.Locator("#loss-figure")).ToHaveAttributeAsync("data-points", "2");
        await Expect(page.Locator("#acc-figure")).ToHaveAttributeAsync("data-points", "2");
        Assert.True(int.Parse(await page.Locator("#batch-figure").GetAttributeAsync("data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 2);

        await DashboardFixture.GoToAsync(page, "#/models");
        var row = page.Locator("#models-list table[data-model='uploaded-shapes'] tbody tr");
        await Expect(row).ToHaveCountAsync(1, new() { Timeout = 30_000 });
        await row.Locator("button.evaluation").ClickAsync();
        await Expect(page.Locator("#confusion tbody tr")).ToHaveCountAsync(3);
        await Expect(page.Locator("#confusion thead th")).ToHaveTextAsync(["true \\ predicted", .. pictures.Select(p => p.Class).Distinct().Order(StringComparer.Ordinal)]);
        await Expect(page.Locator("#per-class tbody tr")).ToHaveCountAsync(3);
        var total = (await page.Locator("#confusion tbody td").AllInnerTextsAsync()).Sum(int.Parse);
        await page.Locator("#eval-only-wrong").UncheckAsync();
        await Expect(page.Locator("#eval-gallery figure.sample")).ToHaveCountAsync(total);
        var loaded = await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#eval-gallery img')].every(i => i.complete && i.naturalWidth === 28)");
        Assert.True(loaded);
        await DashboardFixture.ScreenshotAsync(page, "upload-train-evaluation");

        // The run has finished: the upload can be deleted from the Datasets view, and leaves the training form too.
        await DashboardFixture.GoToAsync(page, "#/datasets");
        await datasetRow.Locator("button.delete").ClickAsync();
        await Expect(datasetRow).ToHaveCountAsync(0, new() { Timeout = 30_000 });
        await Expect(page.Locator("#upload-summary")).ToBeHiddenAsync();
        await Expect(page.Locator($"#f-dataset option[value='{id}']")).ToHaveCountAsync(0);
        await Expect(page.Locator("#datasets-error")).ToBeEmptyAsync();
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [GeneratedRegex(@"^(\d+m )?\d+s$")]
    private static partial Regex Duration();

    [Fact]
    public async Task While_a_run_trains_the_time_left_for_the_epoch_and_the_job_is_shown()
    {
        var (page, errors) = await fixture.OpenAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await DashboardFixture.FillTrainingFormAsync(page, new Dictionary<string, string>
        {
            ["epochs"] = "3", ["batchSize"] = "16", ["imageSize"] = "67", ["device"] = "cpu",
            ["modelName"] = "eta-run", ["maxTrainImages"] = "1600", ["maxTestImages"] = "32",
        });

        await page.Locator("#train-submit").ClickAsync();
        await Expect(page.Locator("#train-result")).ToHaveTextAsync(QueuedJob(), new() { Timeout = 60_000 });
        var jobId = QueuedJob().Match(await page.Locator("#train-result").InnerTextAsync()).Groups[1].Value;

        // Estimated from the batches seen this epoch: the job's time left is at least the epoch's.
        await Expect(page.Locator("#live-eta-job")).ToHaveTextAsync(Duration(), new() { Timeout = 120_000 });
        await Expect(page.Locator("#live-eta-epoch")).ToHaveTextAsync(Duration());
        Assert.Equal("Running", await page.Locator("#live-status").InnerTextAsync());
        static int Seconds(string text) => text.Split(' ').Sum(p => int.Parse(p[..^1], System.Globalization.CultureInfo.InvariantCulture) * (p.EndsWith('m') ? 60 : 1));
        var both = await page.EvaluateAsync<string[]>("() => [document.getElementById('live-eta-epoch').textContent, document.getElementById('live-eta-job').textContent]");
        if (Duration().IsMatch(both[0]) && Duration().IsMatch(both[1]))
        {
            Assert.True(Seconds(both[1]) >= Seconds(both[0]), $"job {both[1]} < epoch {both[0]}");
        }

        await DashboardFixture.ScreenshotAsync(page, "training-time-left");

        // Cancelled from its Run view.
        await Expect(page.Locator("#live-cancel")).ToHaveAttributeAsync("aria-label", $"Cancel job {jobId}");
        await page.Locator("#live-cancel").ClickAsync();
        await Expect(page.Locator("#live-status")).ToHaveTextAsync("Cancelled", new() { Timeout = 60_000 });
        await Expect(page.Locator("#live-cancel")).ToBeHiddenAsync();
        await Expect(page.Locator("#live-cancel-error")).ToBeEmptyAsync();
        await Expect(page.Locator("#live-events li").Last).ToContainTextAsync("Cancelled");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task Ticked_jobs_are_compared_on_overlaid_per_epoch_curves()
    {
        using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
        var ids = new List<string>();
        foreach (var (epochs, seed) in new[] { (2, 1), (3, 2) })
        {
            using var response = await http.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
            {
                dataset = "fashion-mnist", epochs, batchSize = 32, imageSize = 67, seed, device = "cpu",
                maxTrainImages = 64, maxTestImages = 32, modelName = "compared", activate = false,
            });
            Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
            ids.Add((await response.Content.ReadFromJsonAsync<Nin.Api.Training.TrainAccepted>(Api.TrainingApiTests.Json))!.JobId);
        }

        foreach (var id in ids)
        {
            await Api.TrainingApiTests.WaitForAsync(http, id, j => j.Status == Nin.Api.Training.JobStatus.Succeeded, TimeSpan.FromMinutes(4));
        }

        var (page, errors) = await fixture.OpenAsync("/#/runs");
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await Expect(page.Locator("#compare")).ToBeHiddenAsync();
        await page.Locator($"#jobs-table tr[data-job-id='{ids[0]}'] input.compare").CheckAsync();
        await Expect(page.Locator("#compare-hint")).ToHaveTextAsync("Tick one more job to compare.");
        await Expect(page.Locator("#compare")).ToBeHiddenAsync();
        await page.Locator($"#jobs-table tr[data-job-id='{ids[1]}'] input.compare").CheckAsync();
        await Expect(page.Locator("#compare")).ToBeVisibleAsync();
        await Expect(page.Locator("#compare")).ToHaveAttributeAsync("data-jobs", "2");
        var points = await page.EvaluateAsync<int[]>("() => window.ninDashboard.compareView.accChart.data.datasets.map(d => d.data.length)");
        Assert.Equal([2, 3], points);
        var losses = await page.EvaluateAsync<int[]>("() => window.ninDashboard.compareView.lossChart.data.datasets.map(d => d.data.length)");
        Assert.Equal([2, 3], losses);
        var labels = await page.EvaluateAsync<string[]>("() => window.ninDashboard.compareView.accChart.data.datasets.map(d => d.label)");
        Assert.StartsWith(ids[0][..8], labels[0], StringComparison.Ordinal);
        Assert.StartsWith(ids[1][..8], labels[1], StringComparison.Ordinal);
        await page.Locator("#compare").ScreenshotAsync(new() { Path = Path.Combine(DashboardFixture.Screenshots, "compare-runs.png") });

        await page.Locator($"#jobs-table tr[data-job-id='{ids[0]}'] input.compare").UncheckAsync();
        await Expect(page.Locator("#compare")).ToBeHiddenAsync();
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task A_run_from_the_form_shows_its_confusion_matrix_per_class_figures_and_gallery_and_can_be_deleted()
    {
        var (page, errors) = await fixture.OpenAsync();
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        var fields = new Dictionary<string, string>
        {
            ["epochs"] = "1", ["batchSize"] = "32", ["imageSize"] = "67", ["device"] = "cpu",
            ["modelName"] = "eval-run", ["maxTrainImages"] = "256", ["maxTestImages"] = "60",
        };
        await DashboardFixture.FillTrainingFormAsync(page, fields);

        await page.Locator("#train-submit").ClickAsync();
        await Expect(page.Locator("#train-result")).ToHaveTextAsync(QueuedJob(), new() { Timeout = 60_000 });
        await Expect(page.Locator("#live-status")).ToHaveTextAsync("Succeeded", new() { Timeout = 240_000 });

        // The per-batch loss curve was drawn live from BatchProgress (8 batches: at least the first and the last),
        // beside the per-epoch curves; the time left reads "done" once the job finished.
        var batchPoints = int.Parse(await page.Locator("#batch-figure").GetAttributeAsync("data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(batchPoints, 2, 8);
        var xs = await page.EvaluateAsync<double[]>("() => window.ninDashboard.batchChart.data.datasets[0].data.map(p => p.x)");
        Assert.Equal(batchPoints, xs.Length);
        Assert.Equal(1.0, xs[^1], 9);
        Assert.Equal(xs.Order(), xs);
        await Expect(page.Locator("#live-eta-job")).ToHaveTextAsync("done");
        await DashboardFixture.ScreenshotAsync(page, "training-batch-curve");

        // The version the run stored (not served: alpha is) has its evaluation, computed when training ended.
        await DashboardFixture.GoToAsync(page, "#/models");
        var row = page.Locator("#models-list table[data-model='eval-run'] tbody tr");
        await Expect(row).ToHaveCountAsync(1, new() { Timeout = 30_000 });
        await row.Locator("button.evaluation").ClickAsync();
        await Expect(page.Locator("#evaluation")).ToBeVisibleAsync();
        await Expect(page.Locator("#eval-status")).ToHaveTextAsync(new Regex(@"^Accuracy \d+\.\d% on 60 test images of fashion-mnist\.$"));
        await Expect(page.Locator("#confusion tbody tr")).ToHaveCountAsync(10);
        await Expect(page.Locator("#confusion tbody td")).ToHaveCountAsync(100);
        await Expect(page.Locator("#per-class tbody tr")).ToHaveCountAsync(10);
        var cells = await page.Locator("#confusion tbody td").AllInnerTextsAsync();
        Assert.Equal(60, cells.Sum(int.Parse));
        var diagonal = await page.Locator("#confusion tbody td.diag").AllInnerTextsAsync();
        var wrong = 60 - diagonal.Sum(int.Parse);

        // Only the mistakes, then all test images (mistakes first).
        await Expect(page.Locator("#eval-gallery figure.sample")).ToHaveCountAsync(Math.Min(48, wrong));
        await Expect(page.Locator("#eval-gallery figure.sample.right")).ToHaveCountAsync(0);
        await Expect(page.Locator("#eval-gallery-note")).ToContainTextAsync($"{wrong} of 60 test images are misclassified");
        var loaded = await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#eval-gallery img')].every(i => i.complete && i.naturalWidth === 28)");
        Assert.True(loaded);
        await DashboardFixture.ScreenshotAsync(page, "evaluation");
        await page.Locator("#eval-only-wrong").UncheckAsync();
        await Expect(page.Locator("#eval-gallery figure.sample")).ToHaveCountAsync(48);
        await Expect(page.Locator("#eval-gallery figure.sample.wrong")).ToHaveCountAsync(Math.Min(48, wrong));
        await page.Locator("#evaluation").ScreenshotAsync(new() { Path = Path.Combine(DashboardFixture.Screenshots, "evaluation-gallery.png") });

        // "Show where it looked": each sample in view gets this version's class activation map (eval-run v1, not the
        // served alpha) as an overlay in place of its image, fetched lazily a few images per request; off hides them.
        var predicts = new List<string>();
        page.Request += (_, request) =>
        {
            if (request.Url.Contains("/predict?", StringComparison.Ordinal))
            {
                lock (predicts)
                {
                    predicts.Add(request.Url);
                }
            }
        };
        await page.Locator("#eval-gallery figure.sample").First.ScrollIntoViewIfNeededAsync();
        const string InView = "() => [...document.querySelectorAll('#eval-gallery figure.sample')].filter(f => { const r = f.getBoundingClientRect(); return r.bottom > -100 && r.top < innerHeight + 100; }).length";
        var inView = await page.EvaluateAsync<int>(InView);
        Assert.InRange(inView, 1, 47); // some samples lie below the fold: they must not be fetched yet
        await Expect(page.Locator("#eval-cam-class")).ToBeDisabledAsync();
        await page.Locator("#eval-cam").CheckAsync();
        var overlays = page.Locator("#eval-gallery img.cam");
        await Expect(overlays).ToHaveCountAsync(inView, new() { Timeout = 60_000 });
        await page.WaitForTimeoutAsync(500);
        Assert.Equal(inView, await overlays.CountAsync());
        Assert.Equal(inView, await page.EvaluateAsync<int>(InView)); // nothing scrolled meanwhile
        await Expect(page.Locator("#eval-gallery img.sample-image:visible")).ToHaveCountAsync(48 - inView);
        await Expect(page.Locator("#eval-cam-note")).ToBeEmptyAsync();
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#eval-gallery img.cam')].every(i => i.complete)");
        var drawn = await page.EvaluateAsync<string[]>("""
            () => [...document.querySelectorAll('#eval-gallery img.cam')].map(i =>
              `${i.src.startsWith('data:image/png;base64,')} ${i.complete && i.naturalWidth} ${i.dataset.label === i.closest('figure').dataset.predicted}`)
            """);
        Assert.All(drawn, d => Assert.Equal("True 67 True", d, ignoreCase: true)); // PNG at the version's 67 px input, of the predicted class
        int requests;
        lock (predicts)
        {
            requests = predicts.Count;
            Assert.All(predicts, u => Assert.Contains("model=eval-run&version=1&", u, StringComparison.Ordinal));
        }

        Assert.InRange(requests, (inView + 3) / 4, inView); // a handful of images per request

        // Off: the plain images are back. On again: the same maps at once, from the cache, without a request.
        await page.Locator("#eval-cam").UncheckAsync();
        await Expect(overlays).ToHaveCountAsync(0);
        await Expect(page.Locator("#eval-gallery img.sample-image:visible")).ToHaveCountAsync(48);
        await page.Locator("#eval-cam").CheckAsync();
        Assert.Equal(inView, await overlays.CountAsync());
        await page.WaitForTimeoutAsync(500);
        lock (predicts)
        {
            Assert.Equal(requests, predicts.Count);
        }

        // Scrolled to the end, the last samples get theirs; the true class can be explained instead.
        await page.Locator("#eval-gallery figure.sample").Last.ScrollIntoViewIfNeededAsync();
        await Expect(page.Locator("#eval-gallery figure.sample").Last.Locator("img.cam")).ToHaveCountAsync(1, new() { Timeout = 60_000 });
        await page.Locator("#eval-gallery figure.sample").First.ScrollIntoViewIfNeededAsync();
        await page.Locator("#eval-cam-class").SelectOptionAsync("true");
        var first = page.Locator("#eval-gallery figure.sample").First;
        await Expect(first.Locator("img.cam")).ToHaveAttributeAsync("data-label", await first.Locator(".true").InnerTextAsync(), new() { Timeout = 60_000 });
        lock (predicts)
        {
            Assert.Contains(predicts, u => u.Contains("explainClass=", StringComparison.Ordinal));
        }

        await page.Locator("#evaluation").ScreenshotAsync(new() { Path = Path.Combine(DashboardFixture.Screenshots, "evaluation-gallery-cam.png") });
        var axe = await page.Locator("#eval-body").RunAxe(new Deque.AxeCore.Commons.AxeRunOptions
        {
            RunOnly = new Deque.AxeCore.Commons.RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
        });
        Assert.True(axe.Passes.Length > 5, "axe ran its rules");
        var serious = axe.Violations.Where(v => v.Impact is "serious" or "critical").Select(v => $"{v.Id} ({v.Help}) at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}").ToArray();
        Assert.True(serious.Length == 0, string.Join(Environment.NewLine, serious));

        await page.Locator("#eval-cam").UncheckAsync();
        await Expect(overlays).ToHaveCountAsync(0);
        await Expect(page.Locator("#eval-gallery img.sample-image:visible")).ToHaveCountAsync(48);

        // The served version offers no delete; the new one is deleted, and its evaluation view closes.
        await Expect(page.Locator("#models-list tr[data-active='true'] button.delete")).ToHaveCountAsync(0);
        await row.Locator("button.delete").ClickAsync();
        await Expect(page.Locator("#models-list table[data-model='eval-run']")).ToHaveCountAsync(0, new() { Timeout = 30_000 });
        await Expect(page.Locator("#evaluation")).ToBeHiddenAsync();
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
