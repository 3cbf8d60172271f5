using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard and Swagger UI under the service's Content-Security-Policy and X-Frame-Options: they still work, the
/// browser reports no policy violation (securitypolicyviolation events and console errors), and another page cannot
/// frame them.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class ContentSecurityPolicyTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private const string RecordViolations = """
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
        """;

    private async Task<(IPage Page, List<string> Errors)> OpenAsync(string path)
    {
        using (var http = new HttpClient { BaseAddress = fixture.BaseAddress })
        using (var response = await http.GetAsync(new Uri(path, UriKind.Relative)))
        {
            Assert.Contains("frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
            Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        }

        return await fixture.OpenAsync(path, initScript: RecordViolations);
    }

    private static async Task AssertNoViolationsAsync(IPage page, List<string> errors)
    {
        var violations = await page.EvaluateAsync<string[]>("() => window.__cspViolations");
        Assert.True(violations.Length == 0, "CSP violations: " + string.Join("; ", violations));
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public async Task The_dashboard_works_under_the_policy()
    {
        var (page, errors) = await OpenAsync("/");
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 }); // SignalR's WebSocket: connect-src 'self'
        await Expect(page.Locator("#models-active")).ToHaveTextAsync("alpha v1");
        await Expect(page.Locator("#f-dataset option[value='mnist']")).ToHaveCountAsync(1);

        // Try it: a local file previewed (blob:/data: image) and classified.
        var file = Path.Combine(Path.GetTempPath(), $"nin-csp-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, TestImages.FashionImage(3));
        try
        {
            await page.Locator("#try-file").SetInputFilesAsync(file);
            await Expect(page.Locator("#try-preview")).ToBeVisibleAsync();
            await page.Locator("#try-submit").ClickAsync();
            await Expect(page.Locator("#try-labels li").First).ToBeVisibleAsync(new() { Timeout = 60_000 });
        }
        finally
        {
            File.Delete(file);
        }

        await AssertNoViolationsAsync(page, errors);
    }

    [Fact]
    public async Task Swagger_ui_renders_and_tries_a_request_under_the_policy()
    {
        var (page, errors) = await OpenAsync("/swagger/");
        await Expect(page.Locator(".swagger-ui .title").First).ToContainTextAsync("Nin", new() { Timeout = 60_000 });
        var operation = page.Locator("#operations-Models-ListModels");
        await operation.Locator(".opblock-summary").ClickAsync();
        await operation.Locator(".execute").ClickAsync(); // try-it-out is on by default
        await Expect(operation.Locator(".live-responses-table .response .response-col_status").First).ToContainTextAsync("200", new() { Timeout = 30_000 });
        await AssertNoViolationsAsync(page, errors);
    }

    [Fact]
    public async Task Another_page_cannot_frame_the_dashboard()
    {
        var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var refused = new List<string>();
        page.Console += (_, m) => refused.Add(m.Text);
        await page.SetContentAsync($"<iframe id='f' src='{fixture.BaseAddress}'></iframe>");
        await page.WaitForTimeoutAsync(3000);
        Assert.Equal(0, await page.FrameLocator("#f").Locator("#conn-state").CountAsync());
        Assert.Contains(refused, m => m.Contains("frame", StringComparison.OrdinalIgnoreCase));
    }
}
