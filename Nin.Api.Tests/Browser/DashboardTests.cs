using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>The dashboard in a real browser against the real service: tiny runs only (67 px, a few hundred images).</summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed partial class DashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private static readonly LocatorAssertionsToHaveTextOptions Long = new() { Timeout = 240_000 };

    [GeneratedRegex(@"Queued job (\S+)\.")]
    private static partial Regex QueuedJob();

    private static async Task WaitConnectedAsync(IPage page) =>
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });

    private static Task FillAsync(IPage page, IReadOnlyDictionary<string, string> fields) => DashboardFixture.FillTrainingFormAsync(page, fields);

    private static async Task<string> StartFromFormAsync(IPage page, IReadOnlyDictionary<string, string> fields)
    {
        await FillAsync(page, fields);
        await page.Locator("#train-submit").ClickAsync();
        var result = page.Locator("#train-result");
        await Expect(result).ToHaveTextAsync(QueuedJob(), new() { Timeout = 60_000 });
        return QueuedJob().Match(await result.InnerTextAsync()).Groups[1].Value;
    }

    [Fact]
    public async Task The_page_shows_the_api_defaults_and_the_datasets()
    {
        var (page, errors) = await fixture.OpenAsync();
        await WaitConnectedAsync(page);
        await Expect(page.Locator("#f-epochs")).ToHaveValueAsync("10");
        await Expect(page.Locator("#f-batchSize")).ToHaveValueAsync("128");
        await Expect(page.Locator("#f-learningRate")).ToHaveValueAsync("0.1");
        await Expect(page.Locator("#f-imageSize")).ToHaveValueAsync("224");
        await Expect(page.Locator("#f-device")).ToHaveValueAsync("auto");
        await Expect(page.Locator("#f-dataset option[value='mnist']")).ToHaveCountAsync(1);
        await Expect(page.Locator("#f-dataset")).ToHaveValueAsync("fashion-mnist");
        await Expect(page.Locator("#models-active")).ToHaveTextAsync("alpha v1");
        await DashboardFixture.GoToAsync(page, "#/train");
        await Expect(page.Locator("#f-epochs")).ToBeVisibleAsync();
        await DashboardFixture.ScreenshotAsync(page, "dashboard");

        // Readable on a phone: nothing wider than the screen but the tables' own scroll boxes.
        var (phone, _) = await fixture.OpenAsync(width: 390, height: 844);
        await WaitConnectedAsync(phone);
        var overflow = await phone.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        var wide = await phone.EvaluateAsync<string[]>("""
            () => [...document.querySelectorAll('body *')]
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement?.closest('.scroll'))
              .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)
            """);
        Assert.True(overflow <= 0, $"The page is {overflow}px wider than a phone screen: {string.Join(", ", wide)}");
        await DashboardFixture.ScreenshotAsync(phone, "dashboard-phone");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task A_run_started_from_the_form_charts_each_epoch_survives_a_reload_and_succeeds()
    {
        var (page, errors) = await fixture.OpenAsync();
        await WaitConnectedAsync(page);
        var jobId = await StartFromFormAsync(page, new Dictionary<string, string>
        {
            ["epochs"] = "2", ["batchSize"] = "32", ["imageSize"] = "67", ["device"] = "cpu",
            ["modelName"] = "browser-run", ["maxTrainImages"] = "128", ["maxTestImages"] = "32",
        });
        await Expect(page).ToHaveURLAsync(new Regex($"#/runs/{jobId}$")); // queued: its Run view opens
        await Expect(page.Locator("#live-id")).ToBeVisibleAsync();
        await Expect(page.Locator("#live-id")).ToHaveTextAsync(jobId);
        await Expect(page.Locator($"#jobs-table tr[data-job-id='{jobId}']")).ToHaveCountAsync(1);

        // First epoch on the chart, then a reload mid-run still shows it (SubscribeAll's snapshots).
        await Expect(page.Locator("#loss-figure")).ToHaveAttributeAsync("data-points", new Regex("^[12]$"), new() { Timeout = 240_000 });
        await DashboardFixture.ScreenshotAsync(page, "training-epoch-1");
        await page.ReloadAsync();
        await WaitConnectedAsync(page);
        await Expect(page.Locator("#live-id")).ToBeVisibleAsync(); // the deep link #/runs/{jobId} survives the reload
        await Expect(page.Locator("#live-id")).ToHaveTextAsync(jobId);
        await Expect(page.Locator("#loss-figure")).ToHaveAttributeAsync("data-points", new Regex("^[12]$"), new() { Timeout = 30_000 });

        await Expect(page.Locator("#live-status")).ToHaveTextAsync("Succeeded", Long);
        await Expect(page.Locator("#loss-figure")).ToHaveAttributeAsync("data-points", "2");
        await Expect(page.Locator("#acc-figure")).ToHaveAttributeAsync("data-points", "2");
        await Expect(page.Locator("#epochs-table tbody tr")).ToHaveCountAsync(2);
        var points = await page.EvaluateAsync<int[]>("() => [window.ninDashboard.lossChart.data.datasets[0].data.length, window.ninDashboard.accChart.data.datasets[0].data.length, window.ninDashboard.accChart.data.datasets[1].data.length]");
        Assert.Equal([2, 2, 2], points);
        await Expect(page.Locator($"#jobs-table tr[data-job-id='{jobId}'] .status")).ToHaveTextAsync("Succeeded");
        await Expect(page.Locator($"#jobs-table tr[data-job-id='{jobId}'] button.cancel")).ToHaveCountAsync(0);

        // The new version is listed (not served: a model was already active), with its accuracy.
        await Expect(page.Locator("#models-list table[data-model='browser-run'] tbody tr")).ToHaveCountAsync(1, new() { Timeout = 30_000 });
        await Expect(page.Locator("#models-list table[data-model='browser-run'] tbody tr td").Nth(1)).ToHaveTextAsync(new Regex(@"^\d+\.\d%$"));
        await page.Locator("#live-job details summary").ClickAsync();
        await DashboardFixture.ScreenshotAsync(page, "training-succeeded");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task A_model_trained_while_the_page_was_offline_appears_once_it_reconnects()
    {
        var (page, _) = await fixture.OpenAsync();
        await WaitConnectedAsync(page);
        await Expect(page.Locator("#models-list table[data-model='offline-run']")).ToHaveCountAsync(0);

        // The page misses JobFinished: it is offline from before the job starts until after it has finished.
        await page.Context.SetOfflineAsync(true);
        await Expect(page.Locator("#conn-state")).Not.ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
        using var posted = await http.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            epochs = 1, batchSize = 32, imageSize = 67, device = "cpu", modelName = "offline-run", maxTrainImages = 64, maxTestImages = 32, activate = false,
        });
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var location = posted.Headers.Location!;
        var deadline = DateTime.UtcNow.AddMinutes(4);
        string? status = null;
        while (status != "Succeeded" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
            using var job = JsonDocument.Parse(await http.GetStringAsync(location));
            status = job.RootElement.GetProperty("status").GetString();
        }

        Assert.Equal("Succeeded", status);
        await page.Context.SetOfflineAsync(false);
        await WaitConnectedAsync(page);
        await Expect(page.Locator("#models-list table[data-model='offline-run'] tbody tr")).ToHaveCountAsync(1, new() { Timeout = 30_000 });
    }

    [Fact]
    public async Task A_run_can_be_cancelled_from_the_jobs_list()
    {
        var (page, errors) = await fixture.OpenAsync();
        await WaitConnectedAsync(page);
        var jobId = await StartFromFormAsync(page, new Dictionary<string, string>
        {
            ["epochs"] = "200", ["batchSize"] = "32", ["imageSize"] = "67", ["device"] = "cpu",
            ["modelName"] = "browser-cancel", ["maxTrainImages"] = "256", ["maxTestImages"] = "32",
        });
        await DashboardFixture.GoToAsync(page, "#/runs");
        var row = page.Locator($"#jobs-table tr[data-job-id='{jobId}']");
        await Expect(row.Locator(".status")).ToHaveTextAsync(new Regex("^(Queued|Running)$"));
        await row.Locator("button.cancel").ClickAsync();

        await Expect(row.Locator(".status")).ToHaveTextAsync("Cancelled", Long);
        await Expect(row.Locator("button.cancel")).ToHaveCountAsync(0);
        await Expect(page.Locator("#jobs-error")).ToBeEmptyAsync();
        await DashboardFixture.ScreenshotAsync(page, "training-cancelled");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task Try_it_classifies_an_uploaded_fashion_mnist_png()
    {
        var file = Path.Combine(Path.GetTempPath(), $"nin-fm-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, TestImages.FashionImage(0));
        try
        {
            var (page, errors) = await fixture.OpenAsync();
            await page.Locator("#try-file").SetInputFilesAsync(file);
            await Expect(page.Locator("#try-preview")).ToBeVisibleAsync();
            await page.Locator("#try-topk").FillAsync("4");
            await page.Locator("#try-submit").ClickAsync();

            await Expect(page.Locator("#try-labels li")).ToHaveCountAsync(4, new() { Timeout = 60_000 });
            await Expect(page.Locator("#try-model")).ToHaveTextAsync("alpha v1");
            var labels = await page.Locator("#try-labels li .label").AllInnerTextsAsync();
            Assert.All(labels, l => Assert.Contains(l, Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames));
            await Expect(page.Locator("#try-error")).ToBeEmptyAsync();
            await DashboardFixture.ScreenshotAsync(page, "try-it");
            Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Try_it_shows_where_the_model_looked_when_asked()
    {
        var file = Path.Combine(Path.GetTempPath(), $"nin-fm-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, TestImages.FashionImage(2));
        try
        {
            var (page, errors) = await fixture.OpenAsync();
            await page.Locator("#try-file").SetInputFilesAsync(file);
            await page.Locator("#try-explain").CheckAsync();
            await page.Locator("#try-submit").ClickAsync();

            await Expect(page.Locator("#try-cam")).ToBeVisibleAsync(new() { Timeout = 60_000 });
            var top = await page.Locator("#try-labels li .label").First.InnerTextAsync();
            await Expect(page.Locator("#try-cam-caption")).ToContainTextAsync($"Evidence for {top}");
            await Expect(page.Locator("#try-cam-caption")).ToContainTextAsync(new Regex(@"(Grad-CAM|CAM) at block\d, \d+×\d+"));
            // The overlay is a real picture (the model's input size), decoded by the browser.
            var width = await page.Locator("#try-cam-img").EvaluateAsync<int>("img => img.decode().then(() => img.naturalWidth)");
            Assert.True(width >= 16, $"overlay natural width {width}");
            await DashboardFixture.ScreenshotAsync(page, "try-it-cam");

            // Unchecked again, the next answer has no map.
            await page.Locator("#try-explain").UncheckAsync();
            await page.Locator("#try-submit").ClickAsync();
            await Expect(page.Locator("#try-cam")).ToBeHiddenAsync(new() { Timeout = 60_000 });
            Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_newcomer_sees_the_served_model_and_can_classify_a_picture_without_scrolling()
    {
        var file = Path.Combine(Path.GetTempPath(), $"nin-fm-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, TestImages.FashionImage(1));
        try
        {
            foreach (var (width, height) in new[] { (1280, 800), (390, 844) })
            {
                var (page, errors) = await fixture.OpenAsync(width: width, height: height);
                await Expect(page.Locator("#ov-model")).ToHaveTextAsync("alpha v1", new() { Timeout = 60_000 });
                await Expect(page.Locator("#ov-engine")).ToHaveTextAsync(new Regex("^(torch|onnxruntime) · "), new() { Timeout = 60_000 });
                await Expect(page.Locator("#ov-runs")).Not.ToHaveTextAsync("–", new() { Timeout = 60_000 });

                // No scrolling: the served model and the try-it form are inside the first screen.
                foreach (var id in new[] { "#ov-model", "#drop-zone", "#try-submit" })
                {
                    var box = await page.Locator(id).BoundingBoxAsync();
                    Assert.True(box is not null && box.Y + box.Height <= height, $"{id} is below the first screen at {width}x{height} (bottom {box?.Y + box?.Height:F0}px)");
                }

                Assert.Equal(0, await page.EvaluateAsync<int>("() => window.scrollY"));
                await page.Locator("#try-file").SetInputFilesAsync(file);
                await page.Locator("#try-submit").ClickAsync();
                await Expect(page.Locator("#try-model")).ToHaveTextAsync("alpha v1", new() { Timeout = 60_000 });
                await Expect(page.Locator("#try-labels li").First).ToBeVisibleAsync();
                await DashboardFixture.ScreenshotAsync(page, $"overview-{width}");
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(DashboardFixture.Screenshots, $"overview-{width}-first-screen.png") });
                Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Invalid_input_shows_the_api_message_next_to_the_field()
    {
        var (page, errors) = await fixture.OpenAsync("/#/train");
        await Expect(page.Locator("#train-advanced")).Not.ToHaveAttributeAsync("open", ""); // preset-first: Advanced starts closed
        await FillAsync(page, new Dictionary<string, string> { ["imageSize"] = "10", ["epochs"] = "0" });
        await page.Locator("#train-advanced > summary").ClickAsync(); // closed again: the message must still be seen
        await page.Locator("#train-submit").ClickAsync();

        await Expect(page.Locator("#err-imageSize")).ToContainTextAsync("imageSize must be between 67", new() { Timeout = 30_000 });
        await Expect(page.Locator("#err-imageSize")).ToBeVisibleAsync(); // Advanced opened by the message about its field
        await Expect(page.Locator("#f-imageSize")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.Locator("#err-epochs")).ToContainTextAsync("epochs must be between 1");
        await Expect(page.Locator("#err-batchSize")).ToBeEmptyAsync();
        await Expect(page.Locator("#train-result")).ToBeEmptyAsync();
        await DashboardFixture.ScreenshotAsync(page, "training-invalid");

        // Fixing the field clears the message on the next submit.
        await FillAsync(page, new Dictionary<string, string> { ["imageSize"] = "67" });
        await page.Locator("#train-submit").ClickAsync();
        await Expect(page.Locator("#err-imageSize")).ToBeEmptyAsync();
        await Expect(page.Locator("#err-epochs")).ToContainTextAsync("epochs must be between 1");
        Assert.DoesNotContain(errors, e => !e.Contains("400", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Swagger_ui_renders_the_document()
    {
        var (page, errors) = await fixture.OpenAsync("/swagger/");
        await Expect(page.Locator(".swagger-ui .title").First).ToContainTextAsync("Nin", new() { Timeout = 60_000 });
        await Expect(page.Locator(".opblock-summary-path[data-path='/predict']")).ToHaveCountAsync(1);
        await DashboardFixture.ScreenshotAsync(page, "swagger");
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task The_form_offers_the_presets_fills_the_fields_each_sets_and_a_job_that_learned_nothing_shows_its_warning()
    {
        var (page, errors) = await fixture.OpenAsync("/#/train");
        await WaitConnectedAsync(page);
        await Expect(page.Locator("#f-recipe")).ToHaveValueAsync("d2l");
        await Expect(page.Locator("#recipe-sets")).ToContainTextAsync("d2l");
        await Expect(page.Locator("#f-architecture")).ToHaveValueAsync("nin");

        await page.Locator("#f-recipe").SelectOptionAsync("robust");
        await Expect(page.Locator("#f-architecture")).ToHaveValueAsync("nin-bn");
        await Expect(page.Locator("#f-schedule")).ToHaveValueAsync("one-cycle");
        await Expect(page.Locator("#f-momentum")).ToHaveValueAsync("0.9");
        await Expect(page.Locator("#f-shift")).ToHaveValueAsync("0.1");
        await Expect(page.Locator("#f-flip")).ToHaveValueAsync("true");
        await Expect(page.Locator("#f-epochs")).ToHaveValueAsync("30");
        await Expect(page.Locator("#recipe-sets")).ToContainTextAsync("schedule one-cycle");
        await DashboardFixture.ScreenshotAsync(page, "dashboard-robust-preset");
        await page.Locator("#f-recipe").SelectOptionAsync("d2l");
        await Expect(page.Locator("#f-epochs")).ToHaveValueAsync("10");
        await Expect(page.Locator("#f-schedule")).ToHaveValueAsync("constant");

        // d2l's recipe on a tiny own set of shapes learns nothing: the job's row and live view say so.
        using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
        using var form = Api.TestZips.Form(Api.ShapePictures.Zip(Api.ShapePictures.Make(3, 12, 16, 41)), "stuck shapes", fields: ("size", "16"));
        using var uploaded = await http.PostAsync(new Uri("/datasets", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.Created, uploaded.StatusCode);
        var datasetId = JsonDocument.Parse(await uploaded.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString();
        using var posted = await http.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = datasetId, recipe = "d2l", epochs = 2, batchSize = 16, imageSize = 67, device = "cpu", modelName = "stuck-shapes", seed = 1,
        });
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var jobId = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement.GetProperty("jobId").GetString();
        await DashboardFixture.GoToAsync(page, "#/runs");
        var row = page.Locator($"#jobs-table tr[data-job-id='{jobId}']");
        await Expect(row.Locator(".status")).ToHaveTextAsync("Succeeded", Long);
        await Expect(row.Locator(".warning-mark")).ToHaveTextAsync("did not learn");
        await row.Locator("a.run-link").ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex($"#/runs/{jobId}$"));
        await Expect(page.Locator("#live-warnings")).ToBeVisibleAsync();
        await Expect(page.Locator("#live-warnings")).ToContainTextAsync("did not learn");
        await Expect(page.Locator("#live-warnings")).ToContainTextAsync("not activated");
        await DashboardFixture.ScreenshotAsync(page, "dashboard-did-not-learn");
        Assert.Empty(errors);
    }
}
