using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard's views: each reached from the persistent navigation (mouse and keyboard) and by its URL, a deep link
/// that survives a reload, back and forward between them, and the Run view of a real job, followed live from the
/// overview's sparkline to its cancellation.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class DashboardViewsTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    /// <summary>The navigation's views: its data-view, the hash, the view's heading and a section only it shows.</summary>
    public static readonly (string View, string Hash, string Heading, string Section)[] Views =
    [
        ("overview", "#/", "overview-h", "#recent"),
        ("try", "#/try", "try-h", "#try"),
        ("train", "#/train", "train-h", "#train"),
        ("runs", "#/runs", "jobs-h", "#jobs"),
        ("sweeps", "#/sweeps", "sweeps-h", "#sweeps"),
        ("models", "#/models", "models-h", "#models"),
        ("datasets", "#/datasets", "datasets-h", "#datasets"),
    ];

    private static readonly string[] Sections = ["#overview", "#try", "#recent", "#train", "#live", "#jobs", "#sweeps", "#sweep", "#models", "#datasets", "#upload"];

    private static async Task AssertShownAsync(IPage page, string view, string section)
    {
        await Expect(page.Locator("nav a[aria-current='page']")).ToHaveCountAsync(1);
        await Expect(page.Locator($"nav a[data-view='{(view == "run" ? "runs" : view)}']")).ToHaveAttributeAsync("aria-current", "page"); // a run is under Runs
        await Expect(page.Locator(section)).ToBeVisibleAsync();
        var visible = await page.EvaluateAsync<string[]>("ids => ids.filter(id => document.querySelector(id).checkVisibility())", Sections);
        var expected = view switch
        {
            "overview" => new[] { "#overview", "#try", "#recent" },
            "models" or "runs" or "sweeps" or "train" or "try" => [section],
            "datasets" => ["#datasets", "#upload"],
            "run" => ["#live"],
            _ => throw new ArgumentOutOfRangeException(nameof(view)),
        };
        Assert.Equal(expected, visible);
    }

    [Fact]
    public async Task Every_view_is_reached_from_the_navigation_and_by_a_deep_link_that_survives_a_reload_and_back_and_forward_move_between_them()
    {
        var (page, errors) = await fixture.OpenAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await AssertShownAsync(page, "overview", "#recent");

        foreach (var (view, hash, heading, section) in Enumerable.Reverse(Views))
        {
            // A click on the navigation: the view, its link marked current, focus on its heading, its URL and title.
            await page.Locator($"nav a[data-view='{view}']").ClickAsync();
            await AssertShownAsync(page, view, section);
            Assert.Equal(heading, await page.EvaluateAsync<string>("() => document.activeElement.id"));
            Assert.EndsWith(hash, page.Url, StringComparison.Ordinal);
            Assert.EndsWith("· Nin", await page.TitleAsync(), StringComparison.Ordinal);

            // The same URL reloaded (and opened afresh) shows the same view.
            await page.ReloadAsync();
            await AssertShownAsync(page, view, section);
            var (fresh, freshErrors) = await fixture.OpenAsync("/" + hash);
            await AssertShownAsync(fresh, view, section);
            await fresh.Context.CloseAsync();
            Assert.Empty(freshErrors);
        }

        // Back goes through the views in the order they were visited, forward again.
        await AssertShownAsync(page, "overview", "#recent");
        await page.GoBackAsync();
        await AssertShownAsync(page, "try", "#try");
        await page.GoBackAsync();
        await AssertShownAsync(page, "train", "#train");
        await page.GoForwardAsync();
        await AssertShownAsync(page, "try", "#try");

        // By keyboard: Tab reaches the navigation, Enter follows a link, and focus lands on the view's heading.
        await page.Locator("nav a[data-view='models']").FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await AssertShownAsync(page, "models", "#models");
        Assert.Equal("models-h", await page.EvaluateAsync<string>("() => document.activeElement.id"));
        await page.Keyboard.PressAsync("Shift+Tab");
        Assert.Equal("nav", await page.EvaluateAsync<string>("() => document.activeElement.closest('nav')?.tagName.toLowerCase() ?? ''"));

        // The served model on the overview links to its versions (#/models/alpha): marked, focused, and so after a reload.
        await DashboardFixture.GoToAsync(page, "#/");
        await page.Locator("#ov-model a").ClickAsync();
        await AssertShownAsync(page, "models", "#models");
        Assert.EndsWith("#/models/alpha", page.Url, StringComparison.Ordinal);
        await Expect(page.Locator(".model[data-model='alpha']")).ToHaveAttributeAsync("aria-current", "true");
        Assert.Equal("alpha", await page.EvaluateAsync<string>("() => document.activeElement.closest('.model')?.dataset.model ?? ''"));
        await page.ReloadAsync();
        await AssertShownAsync(page, "models", "#models");
        await Expect(page.Locator(".model[data-model='alpha']")).ToHaveAttributeAsync("aria-current", "true", new() { Timeout = 30_000 });
        Assert.Equal("Models alpha · Nin", await page.TitleAsync());

        // An old single-page anchor lands on its view; an unknown run says so.
        var (legacy, _) = await fixture.OpenAsync("/#upload");
        await AssertShownAsync(legacy, "datasets", "#datasets");
        Assert.EndsWith("#/datasets", legacy.Url, StringComparison.Ordinal);
        await DashboardFixture.GoToAsync(legacy, "#/runs/no-such-run");
        await AssertShownAsync(legacy, "run", "#live");
        await Expect(legacy.Locator("#live-empty")).ToHaveTextAsync("There is no run no-such-run.", new() { Timeout = 30_000 });
        await legacy.Context.CloseAsync();
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task A_real_run_is_followed_from_the_overview_sparkline_to_its_run_view_through_a_reload_to_its_cancellation()
    {
        // Two finished runs from before (in the job store, with their epochs), listed after the running one.
        var store = fixture.Factory.Services.GetRequiredService<ITrainingJobStore>();
        foreach (var (model, accuracies) in new[] { ("views-done-a", new[] { 0.42, 0.61, 0.70, 0.74 }), ("views-done-b", new[] { 0.55, 0.72, 0.78, 0.81, 0.83 }) })
        {
            var done = store.Create(new TrainSettings("fashion-mnist", accuracies.Length, 32, 0.05, 0, 0, 67, 0, "cpu", model, 64, 32, false, Recipe: "d2l"));
            store.Update(done.JobId, j => j with
            {
                Status = JobStatus.Succeeded,
                StartedAt = DateTimeOffset.UtcNow.AddMinutes(-10),
                FinishedAt = DateTimeOffset.UtcNow.AddMinutes(-5),
                Epochs = [.. accuracies.Select((a, i) => new EpochMetrics(i + 1, 2.0 / (i + 1.5), a - 0.03, a, 150, 30))],
            });
        }

        using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
        using var posted = await http.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            epochs = 100, batchSize = 16, imageSize = 67, device = "cpu", modelName = "views-run", maxTrainImages = 320, maxTestImages = 32, activate = false,
        });
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var jobId = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement.GetProperty("jobId").GetString()!;
        try
        {
            var (page, errors) = await fixture.OpenAsync();
            await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });

            // On the overview: the run, running, its sparkline drawing the loss as batches arrive.
            var recent = page.Locator($"#recent-runs li[data-job-id='{jobId}']");
            await Expect(recent).ToHaveAttributeAsync("data-status", "Running", new() { Timeout = 120_000 });
            await Expect(recent.Locator("svg.spark polyline.loss")).ToHaveCountAsync(1, new() { Timeout = 120_000 });
            var before = await recent.Locator("svg.spark polyline.loss").GetAttributeAsync("points");
            await Expect(recent.Locator("svg.spark polyline.loss")).Not.ToHaveAttributeAsync("points", before!, new() { Timeout = 60_000 }); // live
            await Expect(page.Locator("#recent-runs li").First).ToHaveAttributeAsync("data-job-id", jobId); // running first
            await Expect(page.Locator("#recent-runs li[data-status='Succeeded'] svg.spark polyline.acc")).ToHaveCountAsync(2);

            // The README's picture: the overview while a run trains, with a picture classified.
            await page.Locator("#try-file").SetInputFilesAsync(new FilePayload { Name = "fashion-0.png", MimeType = "image/png", Buffer = TestImages.FashionImage(0) });
            await page.Locator("#try-submit").ClickAsync();
            await Expect(page.Locator("#try-labels li").First).ToBeVisibleAsync(new() { Timeout = 60_000 });
            await page.EvaluateAsync("() => document.activeElement?.blur()");
            await DashboardFixture.ScreenshotAsync(page, "overview-running");

            // Its link opens the Run view: live per-batch curve, time left, events.
            await recent.Locator("a").ClickAsync();
            await Expect(page).ToHaveURLAsync(new Regex($"#/runs/{jobId}$"));
            await AssertShownAsync(page, "run", "#live");
            await Expect(page.Locator("#live-id")).ToHaveTextAsync(jobId);
            await Expect(page.Locator("#live-status")).ToHaveTextAsync("Running");
            await Expect(page.Locator("#live-events li").Nth(1)).ToContainTextAsync("Started");
            await Expect(page.Locator("#batch-figure")).Not.ToHaveAttributeAsync("data-points", "0", new() { Timeout = 60_000 });
            await Expect(page.Locator("#batch-empty")).ToBeHiddenAsync();
            await Expect(page.Locator("#live-eta-job")).ToHaveTextAsync(new Regex(@"^(\d+h )?(\d+m )?\d+s$"), new() { Timeout = 60_000 });

            // Reloaded, the deep link shows the same run, still live.
            await page.ReloadAsync();
            await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
            await AssertShownAsync(page, "run", "#live");
            await Expect(page.Locator("#live-id")).ToHaveTextAsync(jobId);
            await Expect(page.Locator("#live-loss")).Not.ToHaveTextAsync("–", new() { Timeout = 60_000 });
            await DashboardFixture.ScreenshotAsync(page, "run-view");

            // Cancelled from its view: the button goes, the events end with it, the overview shows it too.
            await page.Locator("#live-cancel").ClickAsync();
            await Expect(page.Locator("#live-status")).ToHaveTextAsync("Cancelled", new() { Timeout = 120_000 });
            await Expect(page.Locator("#live-cancel")).ToBeHiddenAsync();
            await Expect(page.Locator("#live-events li").Last).ToContainTextAsync("Cancelled");
            await Expect(page.Locator("#batch-empty")).ToBeHiddenAsync(); // this page saw its batches

            // Reloaded once it has ended, the run has no batch losses (they come only live): the chart says so, no empty axes.
            await page.ReloadAsync();
            await Expect(page.Locator("#live-status")).ToHaveTextAsync("Cancelled", new() { Timeout = 60_000 });
            await Expect(page.Locator("#batch-figure")).ToHaveAttributeAsync("data-points", "0");
            await Expect(page.Locator("#batch-empty")).ToBeVisibleAsync();
            await Expect(page.Locator("#batch-empty")).ToContainTextAsync("not kept");
            await page.Locator("#live .crumb a[href='#/runs']").ClickAsync();
            await AssertShownAsync(page, "runs", "#jobs");
            await Expect(page.Locator($"#jobs-table tr[data-job-id='{jobId}']")).ToHaveAttributeAsync("data-status", "Cancelled");
            await page.GoBackAsync();
            await AssertShownAsync(page, "run", "#live");
            await DashboardFixture.GoToAsync(page, "#/");
            await Expect(recent).ToHaveAttributeAsync("data-status", "Cancelled");
            Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
        }
        finally
        {
            using var cancelled = await http.DeleteAsync(new Uri($"/train/{jobId}", UriKind.Relative));
        }
    }
}
