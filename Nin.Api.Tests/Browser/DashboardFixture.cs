using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Tests.Api;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The service on a real port (Kestrel) with one untrained 67 px model active, and Debian's Chromium driven headless by
/// Playwright. Playwright never downloads a browser here: it launches <see cref="ChromiumPath"/>.
/// </summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    public static string ChromiumPath { get; } = Environment.GetEnvironmentVariable("NIN_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public static string Screenshots { get; } = Path.Combine(TestPaths.RepoRoot, "artifacts", "screenshots");

    private IPlaywright? playwright;

    public NinApiFactory Factory { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"Chromium is not at {ChromiumPath}. Install Debian's chromium package (apt-get install chromium), or set NIN_CHROMIUM.");
        }

        var home = Directory.CreateTempSubdirectory("nin-browser-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        // A data folder of its own (uploads land in it) that links the shared built-in datasets.
        var data = Directory.CreateDirectory(Path.Combine(home, "data")).FullName;
        foreach (var dir in Directory.EnumerateDirectories(TestPaths.Datasets).Where(d => Path.GetFileName(d) is "fashion-mnist" or "mnist"))
        {
            Directory.CreateSymbolicLink(Path.Combine(data, Path.GetFileName(dir)), dir);
        }

        Factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["Nin:DataDirectory"] = data }, home);
        Factory.UseKestrel(0);
        Factory.StartServer();
        var addresses = Factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        BaseAddress = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("localhost", "127.0.0.1", StringComparison.Ordinal));

        Directory.CreateDirectory(Screenshots);
        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
            Timeout = 120_000,
        });
    }

    /// <summary>A fresh page on the dashboard, its console errors collected; <paramref name="initScript"/> runs before the page's own scripts.</summary>
    public async Task<(IPage Page, List<string> Errors)> OpenAsync(string path = "/", int width = 1280, int height = 1000, string? initScript = null)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = BaseAddress.ToString(), ViewportSize = new ViewportSize { Width = width, Height = height } });
        if (initScript is not null)
        {
            await context.AddInitScriptAsync(initScript);
        }

        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(120_000);
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                errors.Add(m.Text);
            }
        };
        await page.GotoAsync(path);
        return (page, errors);
    }

    /// <summary>
    /// Goes to one of the dashboard's views as a link would ("#/", "#/models", "#/runs/{jobId}": the hash changes, a
    /// history entry is made) and waits until the router shows it.
    /// </summary>
    public static async Task GoToAsync(IPage page, string hash)
    {
        var path = hash.TrimStart('#');
        await page.EvaluateAsync("h => { location.hash = h; }", hash);
        await page.WaitForFunctionAsync("p => document.body.dataset.route === p", path.Length == 0 ? "/" : path);
    }

    /// <summary>
    /// Fills training-form fields as a user would: on the Train view (gone to first when another view is shown), a
    /// field under the closed "Advanced" part is reached by opening it (a click on its summary) first.
    /// </summary>
    public static async Task FillTrainingFormAsync(IPage page, IReadOnlyDictionary<string, string> fields)
    {
        if (!await page.Locator("#train").IsVisibleAsync())
        {
            await GoToAsync(page, "#/train");
        }

        foreach (var (name, value) in fields)
        {
            var field = page.Locator($"#f-{name}");
            if (await field.EvaluateAsync<bool>("f => !!f.closest('details:not([open])')"))
            {
                await page.Locator("#train-advanced > summary").ClickAsync();
            }

            await field.FillAsync(value);
        }
    }

    public static Task ScreenshotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        playwright?.Dispose();
        Factory?.Dispose();
    }
}
