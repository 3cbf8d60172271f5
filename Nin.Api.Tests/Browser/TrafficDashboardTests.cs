using System.Net.Http.Json;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Api.Tests.Api;
using Nin.Model.Checkpoints;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard's traffic section: a canary share set from a model's versions, the split and each version's requests
/// shown and refreshed while requests arrive, and a roll back that ends it, with no serious or critical axe violation.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class TrafficDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    [Fact]
    public async Task A_canary_share_is_set_its_requests_show_up_live_and_roll_back_ends_it()
    {
        var store = fixture.Factory.Services.GetRequiredService<ModelStore>();
        ServingFixture.AddRandom(store, "gamma", seed: 5);
        ServingFixture.AddRandom(store, "gamma", seed: 6);

        var (page, errors) = await fixture.OpenAsync("/#/models");
        var section = page.Locator("details.traffic[data-model='gamma']");
        await Expect(section).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await section.Locator("summary").ClickAsync();
        await Expect(section.Locator("p.hint").First).ToContainTextAsync("No split", new() { Timeout = 30_000 });

        // Newest (v2) keeps 70 %, the canary v1 gets 30 %.
        await section.Locator("select").First.SelectOptionAsync("1");
        await section.Locator("input[type=number]").FillAsync("30");
        await section.Locator("button[type=submit]").ClickAsync();
        await Expect(section.Locator("tbody tr")).ToHaveCountAsync(2, new() { Timeout = 30_000 });
        await Expect(section.Locator("tr[data-version='2'] .share")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^70"));
        await Expect(section.Locator("tr[data-version='1'] .share")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^30"));
        await Expect(section.Locator("button", new() { HasText = "Promote v1" })).ToBeVisibleAsync();

        // Requests to the model follow the split; the section shows them within a refresh.
        using var http = new HttpClient { BaseAddress = fixture.BaseAddress };
        var versions = new List<int>();
        for (var i = 0; i < 20; i++)
        {
            using var form = PredictApiTests.Form(PredictApiTests.Png(i));
            using var response = await http.PostAsync(new Uri("/predict?model=gamma", UriKind.Relative), form);
            versions.Add((await response.Content.ReadFromJsonAsync<PredictResponse>())!.Model.Version);
        }

        await page.WaitForFunctionAsync(
            "() => [...document.querySelectorAll(\"details.traffic[data-model='gamma'] td.requests\")].reduce((s, td) => s + Number(td.textContent), 0) >= 20",
            null, new() { Timeout = 15_000 });
        Assert.All(versions, v => Assert.Contains(v, new[] { 1, 2 }));
        await DashboardFixture.ScreenshotAsync(page, "traffic");

        var axe = await page.RunAxe(new AxeRunOptions { RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
        var serious = axe.Violations.Where(v => v.Impact is "serious" or "critical").ToArray();
        Assert.True(serious.Length == 0, string.Join("; ", serious.Select(v => $"{v.Id} at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}")));

        await section.Locator("button", new() { HasText = "Roll back" }).ClickAsync();
        await Expect(section.Locator("p.hint").First).ToContainTextAsync("No split", new() { Timeout = 30_000 });
        Assert.False(File.Exists(TrafficSplit.PathFor(store.Root, "gamma")));

        // The served model's split shows on the overview.
        using (var put = await http.PutAsJsonAsync(new Uri("/models/alpha/traffic", UriKind.Relative), new { routes = new[] { new { version = 1, weight = 1 } } }))
        {
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }

        await page.GotoAsync(new Uri(fixture.BaseAddress, "/#/").ToString());
        await page.ReloadAsync(); // a new visit: the page reads the models and the split afresh
        await Expect(page.Locator("#ov-traffic")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^split: v1 100"), new() { Timeout = 30_000 });
        using (var end = await http.DeleteAsync(new Uri("/models/alpha/traffic", UriKind.Relative)))
        {
            Assert.True(end.IsSuccessStatusCode);
        }

        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
