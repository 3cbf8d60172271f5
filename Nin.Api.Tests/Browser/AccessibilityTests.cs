using Xunit.Abstractions;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// axe-core (4.14, WCAG 2.0/2.1 A and AA and best practices) audits every view of the dashboard once it is connected
/// and filled (the Run view with a finished run), at desktop and phone width, in light and dark colour schemes; any
/// serious or critical violation fails, and every violation is printed with its elements. At phone width no view
/// scrolls sideways. A full-page screenshot of each view is kept under artifacts/screenshots/.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class AccessibilityTests(DashboardFixture fixture, ITestOutputHelper output) : IClassFixture<DashboardFixture>
{
    public static TheoryData<int, int, string> Sizes => new()
    {
        { 1280, 1000, "light" },
        { 390, 844, "light" },
        { 1280, 1000, "dark" },
        { 390, 844, "dark" },
    };

    /// <summary>A finished run of three epochs in the job store, for the Run view and the overview's sparklines.</summary>
    private string AddFinishedRun()
    {
        var store = fixture.Factory.Services.GetRequiredService<ITrainingJobStore>();
        var existing = store.List(new JobQuery(JobQuery.MaxLimit)).Items.FirstOrDefault(j => j.Request.ModelName == "a11y-run");
        if (existing is not null)
        {
            return existing.JobId;
        }

        var now = DateTimeOffset.UtcNow;
        var job = store.Create(new TrainSettings("fashion-mnist", 3, 32, 0.05, 0, 0, 67, 0, "cpu", "a11y-run", 64, 32, false, Recipe: "d2l"));
        store.Update(job.JobId, j => j with
        {
            Status = JobStatus.Succeeded,
            StartedAt = now.AddMinutes(-3),
            FinishedAt = now.AddMinutes(-1),
            Epochs = [new EpochMetrics(1, 2.1, 0.3, 0.4, 120, 20), new EpochMetrics(2, 1.2, 0.6, 0.65, 130, 19), new EpochMetrics(3, 0.8, 0.72, 0.7, 128, 19)],
        });
        return job.JobId;
    }

    /// <summary>A finished sweep of two one-epoch trials on a small picture set, for the Sweep view.</summary>
    private async Task<string> AddFinishedSweepAsync()
    {
        using var client = fixture.Factory.CreateClient();
        var listed = JsonNode.Parse(await client.GetStringAsync(new Uri("/sweeps", UriKind.Relative)))!.AsArray();
        var sweepId = (string?)listed.FirstOrDefault()?["sweepId"];
        if (sweepId is null)
        {
            var dataset = await SweepsDashboardTests.UploadShapesAsync(client, "a11y shapes");
            using var response = await client.PostAsJsonAsync(new Uri("/sweeps", UriKind.Relative), new
            {
                @base = new { dataset, epochs = 1, batchSize = 12, modelName = "a11y-sweep" },
                space = new { learningRate = new { values = new[] { 0.1, 0.05 } } },
                earlyStopping = new { rule = "none" },
            });
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
            sweepId = (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["sweepId"]!;
        }

        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((string?)JsonNode.Parse(await client.GetStringAsync(new Uri($"/sweeps/{sweepId}", UriKind.Relative)))!["status"] == "Running")
        {
            Assert.True(DateTime.UtcNow < deadline, $"sweep {sweepId} still running after 3 minutes");
            await Task.Delay(250);
        }

        return sweepId;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task Every_view_has_no_serious_or_critical_accessibility_violation_and_no_sideways_scroll(int width, int height, string scheme)
    {
        var finishedRun = AddFinishedRun();
        var finishedSweep = await AddFinishedSweepAsync();
        var (page, errors) = await fixture.OpenAsync(width: width, height: height);
        await page.EmulateMediaAsync(new PageEmulateMediaOptions { ColorScheme = scheme == "dark" ? ColorScheme.Dark : ColorScheme.Light });
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await Expect(page.Locator("#models-active")).ToHaveTextAsync("alpha v1", new() { Timeout = 60_000 });
        await Expect(page.Locator($"#recent-runs li[data-job-id='{finishedRun}'] svg.spark polyline")).ToHaveCountAsync(2, new() { Timeout = 60_000 });

        // The scheme took: the page's own background follows it (dark mode is prefers-color-scheme, no switch to find).
        var background = await page.EvaluateAsync<string>("() => getComputedStyle(document.documentElement).backgroundColor");
        Assert.Equal(scheme == "dark" ? "rgb(18, 18, 22)" : "rgb(250, 250, 250)", background);

        var failures = new List<string>();
        foreach (var (view, hash, _, section) in DashboardViewsTests.Views.Append(("run", $"#/runs/{finishedRun}", "live-h", "#live")).Append(("sweep", $"#/sweeps/{finishedSweep}", "sweep-h", "#sweep")))
        {
            await DashboardFixture.GoToAsync(page, hash);
            await Expect(page.Locator(section)).ToBeVisibleAsync();
            if (view == "run")
            {
                await Expect(page.Locator("#live-status")).ToHaveTextAsync("Succeeded");
                await Expect(page.Locator("#loss-figure")).ToHaveAttributeAsync("data-points", "3");
            }

            if (view == "sweep")
            {
                await Expect(page.Locator("#sweep-trials-table tbody tr")).ToHaveCountAsync(2);
                await Expect(page.Locator("#sweep-curves")).ToHaveAttributeAsync("data-lines", "2");
            }

            if (view == "sweeps")
            {
                await Expect(page.Locator("#sweeps-table tbody tr")).Not.ToHaveCountAsync(0);
            }

            if (view == "datasets")
            {
                await Expect(page.Locator("#datasets-table tbody tr")).Not.ToHaveCountAsync(0);
            }

            await DashboardFixture.ScreenshotAsync(page, $"view-{view}-{width}-{scheme}");
            if (width < 600)
            {
                var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
                if (overflow > 0)
                {
                    var wide = await page.EvaluateAsync<string[]>("""
                        () => [...document.querySelectorAll('body *')]
                          .filter(e => e.checkVisibility() && e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement?.closest('.scroll'))
                          .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)
                        """);
                    failures.Add($"{view}: {overflow}px wider than the screen: {string.Join(", ", wide.Take(5))}");
                }
            }

            var result = await page.RunAxe(new AxeRunOptions
            {
                RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
            });

            foreach (var violation in result.Violations)
            {
                output.WriteLine($"{view}: {violation.Impact} {violation.Id}: {violation.Help} ({violation.Nodes.Length} element(s))");
                foreach (var node in violation.Nodes.Take(5))
                {
                    output.WriteLine($"    {node.Target}: {node.Html}");
                }
            }

            output.WriteLine($"axe {result.TestEngine.Version} on {view} at {width}x{height} ({scheme}): {result.Passes.Length} rules passed, {result.Violations.Length} violated, {result.Incomplete.Length} to review");
            Assert.True(result.Passes.Length > 20, "axe ran its rules");
            failures.AddRange(result.Violations.Where(v => v.Impact is "serious" or "critical").Select(v =>
                $"{view}: {v.Id} ({v.Help}) at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}"));
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
