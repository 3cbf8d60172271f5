using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Api.Tests.Api;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>The dashboard against a service with an API key: it asks once, stores the key and uses it for fetches and the hub.</summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class DashboardApiKeyTests : IAsyncLifetime
{
    private const string Key = "dashboard-key-123";
    private NinApiFactory factory = null!;
    private IPlaywright? playwright;
    private IBrowser? browser;
    private Uri baseAddress = null!;

    public async Task InitializeAsync()
    {
        var home = Directory.CreateTempSubdirectory("nin-browser-key-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["Security:ApiKeys:0"] = Key }, home);
        factory.UseKestrel(0);
        factory.StartServer();
        var addresses = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        baseAddress = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("localhost", "127.0.0.1", StringComparison.Ordinal));
        playwright = await Playwright.CreateAsync();
        browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = DashboardFixture.ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
            Timeout = 120_000,
        });
    }

    [Fact]
    public async Task The_dashboard_asks_for_the_key_once_on_401_and_then_connects_and_lists_jobs()
    {
        var context = await browser!.NewContextAsync(new BrowserNewContextOptions { BaseURL = baseAddress.ToString() });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(120_000);
        var prompts = new List<string>();
        page.Dialog += async (_, dialog) =>
        {
            prompts.Add(dialog.Message);
            await dialog.AcceptAsync(Key);
        };
        await page.GotoAsync("/");
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        Assert.Equal(Key, await page.EvaluateAsync<string>("() => localStorage.getItem('nin.apiKey')"));
        Assert.Single(prompts);
        Assert.Contains("API key", prompts[0], StringComparison.Ordinal);

        // A reload uses the stored key without asking again.
        await page.ReloadAsync();
        await Expect(page.Locator("#conn-state")).ToHaveTextAsync("connected", new() { Timeout = 60_000 });
        Assert.Single(prompts);
        await DashboardFixture.ScreenshotAsync(page, "dashboard-with-key");
    }

    public async Task DisposeAsync()
    {
        if (browser is not null)
        {
            await browser.CloseAsync();
        }

        playwright?.Dispose();
        factory?.Dispose();
        try
        {
            Directory.Delete(factory!.Home, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
