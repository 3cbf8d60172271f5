using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Extensions.DependencyInjection;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard's side of the promotion gate: activating a worse version shows the gate's reasons, both accuracies and
/// each class's recall change, with no accessibility violation of serious or critical impact; "Activate anyway" serves
/// it (forced, recorded on the version).
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class PromotionGateDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private const int TestImages = 32;

    [Fact]
    public async Task A_refused_activation_shows_the_reasons_and_figures_and_activate_anyway_serves_it()
    {
        // gatex v1 right on 7 images in 8, v2 on 3 in 4 (12.5 points worse), evaluated by hand on one split.
        var labels = BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, 1, TestImages).Test.Labels.Select(l => (int)l).ToArray();
        var store = fixture.Factory.Services.GetRequiredService<ModelStore>();
        foreach (var right in new Func<int, bool>[] { i => i % 8 != 0, i => i % 4 != 0 })
        {
            ModelVersionInfo info;
            using (var network = new NinNetwork(1, 10))
            {
                info = store.Add(network, new ModelMetadata
                {
                    Name = "gatex",
                    ClassNames = BuiltInDatasets.FashionMnist.ClassNames,
                    ImageSize = 67,
                    Preprocessing = new PreprocessingInfo(),
                    Recipe = new TrainingRecipe { Dataset = "fashion-mnist", TestImages = TestImages },
                }, activate: false);
            }

            int[] predicted = [.. labels.Select((l, i) => right(i) ? l : (l + 1) % 10)];
            var predictions = new TestPredictions(labels, predicted, [.. predicted.Select(_ => 0.5f)]);
            EvaluationFiles.Save(info.Directory, ModelEvaluation.FromPredictions(BuiltInDatasets.FashionMnist.ClassNames, predictions, "fashion-mnist"), predictions);
        }

        store.Activate("gatex", 1);
        var (page, errors) = await fixture.OpenAsync("/#/models");
        var activate = page.Locator("button[aria-label='Activate gatex version 2']");
        await Expect(activate).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await activate.ClickAsync();

        var gate = page.Locator("#gate");
        await Expect(gate).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await Expect(page.Locator("#gate-title")).ToContainTextAsync("gatex v2 was not activated");
        await Expect(page.Locator("#gate-reasons li[data-code='accuracy']")).ToContainTextAsync("12.50 points below");
        await Expect(page.Locator("#gate-figures")).ToContainTextAsync("Test accuracy 75.0% against 87.5% for gatex v1");
        await Expect(page.Locator("#gate-classes tbody tr")).ToHaveCountAsync(10);
        await Expect(page.Locator("#gate-classes td.down").First).ToBeVisibleAsync();
        await Expect(gate).Not.ToContainTextAsync("null");
        Assert.Equal(new ActiveModel("gatex", 1), store.Active);
        await DashboardFixture.ScreenshotAsync(page, "promotion-gate");

        var axe = await page.RunAxe(new AxeRunOptions { RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
        var serious = axe.Violations.Where(v => v.Impact is "serious" or "critical").ToArray();
        Assert.True(serious.Length == 0, string.Join("; ", serious.Select(v => $"{v.Id} at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}")));

        // Activate anyway: served, the panel gone, the override recorded on the version.
        await page.Locator("#gate-force").ClickAsync();
        await Expect(page.Locator("table[data-model='gatex'] tr[data-version='2']")).ToHaveAttributeAsync("data-active", "true", new() { Timeout = 60_000 });
        await Expect(gate).ToBeHiddenAsync();
        Assert.Equal(new ActiveModel("gatex", 2), store.Active);
        Assert.Contains("accuracy", Assert.Single(ForcedActivations.Read(store.Find("gatex", 2)!.Directory)).Overridden.Select(r => r.Code));

        // The browser logs the gate's 409 itself, as it does any error status; the page's own code logged nothing.
        var unexpected = errors.Where(e => !e.Contains("status of 409 (Conflict)", StringComparison.Ordinal)).ToArray();
        Assert.True(unexpected.Length == 0, string.Join(Environment.NewLine, unexpected));
    }
}
