using Xunit.Abstractions;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// axe-core (4.14, WCAG 2.0/2.1 A and AA and best practices) audits the dashboard once it is connected and filled, at
/// desktop and phone width, in light and dark colour schemes; any serious or critical violation fails, and every
/// violation is printed with its elements.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class AccessibilityTests(DashboardFixture fixture, ITestOutputHelper output) : IClassFixture<DashboardFixture>
{
    public static TheoryData<int, int, string> Views => new()
    {
        { 1280, 1000, "light" },
        { 390, 844, "light" },
        { 1280, 1000, "dark" },
    };

    [Theory]
    [MemberData(nameof(Views))]
    public async Task The_dashboard_has_no_serious_or_critical_accessibility_violation(int width, int height, string scheme)
    {
        var (page, errors) = await fixture.OpenAsync(width: width, height: height);
        await page.EmulateMediaAsync(new PageEmulateMediaOptions { ColorScheme = scheme == "dark" ? ColorScheme.Dark : ColorScheme.Light });
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        await Expect(page.Locator("#models-active")).ToHaveTextAsync("alpha v1", new() { Timeout = 60_000 });

        // The scheme took: the page's own background follows it (dark mode is prefers-color-scheme, no switch to find).
        var background = await page.EvaluateAsync<string>("() => getComputedStyle(document.documentElement).backgroundColor");
        Assert.Equal(scheme == "dark" ? "rgb(18, 18, 22)" : "rgb(250, 250, 250)", background);
        await DashboardFixture.ScreenshotAsync(page, $"dashboard-{width}-{scheme}");

        var result = await page.RunAxe(new AxeRunOptions
        {
            RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
        });

        foreach (var violation in result.Violations)
        {
            output.WriteLine($"{violation.Impact} {violation.Id}: {violation.Help} ({violation.Nodes.Length} element(s))");
            foreach (var node in violation.Nodes.Take(5))
            {
                output.WriteLine($"    {node.Target}: {node.Html}");
            }
        }

        output.WriteLine($"axe {result.TestEngine.Version} at {width}x{height} ({scheme}): {result.Passes.Length} rules passed, {result.Violations.Length} violated, {result.Incomplete.Length} to review");
        Assert.True(result.Passes.Length > 20, "axe ran its rules");
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").ToArray();
        Assert.True(serious.Length == 0, "serious or critical: " + string.Join("; ", serious.Select(v =>
            $"{v.Id} ({v.Help}) at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}")));
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
