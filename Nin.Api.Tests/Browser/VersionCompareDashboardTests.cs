using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using static Microsoft.Playwright.Assertions;

namespace Nin.Api.Tests.Browser;

/// <summary>
/// The dashboard's version diff: two evaluated versions of one model compared from the Models list, the changes shown
/// per class and the fixed and broken test images as thumbnails (their real test images), with no accessibility
/// violation of serious or critical impact.
/// </summary>
[Collection(TorchCollection.Name)]
[BrowserTests]
public sealed class VersionCompareDashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private const int TestImages = 30;

    [Fact]
    public async Task Two_versions_compared_show_their_changes_and_the_fixed_and_broken_images()
    {
        // Two versions with evaluations on the first 30 Fashion-MNIST test images: v1 right on even indices, v2 right
        // where the index is not a multiple of 3; a wrong answer is the next class.
        var labels = BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, 1, TestImages).Test.Labels.Select(l => (int)l).ToArray();
        int[] Predict(Func<int, bool> right) => [.. labels.Select((l, i) => right(i) ? l : (l + 1) % 10)];
        var v1 = Predict(i => i % 2 == 0);
        var v2 = Predict(i => i % 3 != 0);
        var store = fixture.Factory.Services.GetRequiredService<ModelStore>();
        foreach (var predicted in new[] { v1, v2 })
        {
            ModelVersionInfo info;
            using (var network = new NinNetwork(1, 10))
            {
                info = store.Add(network, new ModelMetadata
                {
                    Name = "beta",
                    ClassNames = BuiltInDatasets.FashionMnist.ClassNames,
                    ImageSize = 67,
                    Preprocessing = new PreprocessingInfo(),
                    Recipe = new TrainingRecipe { Dataset = "fashion-mnist", TestImages = TestImages },
                }, activate: false);
            }

            var predictions = new TestPredictions(labels, predicted, [.. predicted.Select(_ => 0.5f)]);
            EvaluationFiles.Save(info.Directory, ModelEvaluation.FromPredictions(BuiltInDatasets.FashionMnist.ClassNames, predictions, "fashion-mnist"), predictions);
        }

        var fixedCount = Enumerable.Range(0, TestImages).Count(i => v1[i] != labels[i] && v2[i] == labels[i]);
        var brokenCount = Enumerable.Range(0, TestImages).Count(i => v1[i] == labels[i] && v2[i] != labels[i]);
        Assert.True(fixedCount > 0 && brokenCount > 0);

        var (page, errors) = await fixture.OpenAsync("/#/models");
        var form = page.Locator("form.version-compare-form[data-model='beta']");
        await Expect(form).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await form.Locator("select").Nth(0).SelectOptionAsync("1");
        await form.Locator("select").Nth(1).SelectOptionAsync("2");
        await form.Locator("button[type=submit]").ClickAsync();

        await Expect(page.Locator("#vc-title")).ToHaveTextAsync("beta: v1 → v2");
        await Expect(page.Locator("#vc-status")).ToContainTextAsync($"{fixedCount} fixed, {brokenCount} broken", new() { Timeout = 60_000 });
        await Expect(page.Locator("#vc-classes tbody tr")).ToHaveCountAsync(10);
        await Expect(page.Locator("#vc-fixed figure")).ToHaveCountAsync(fixedCount);
        await Expect(page.Locator("#vc-broken figure")).ToHaveCountAsync(brokenCount);

        // Each thumbnail is its test image, loaded (blob URL), 28 px wide as stored.
        var firstFixed = page.Locator("#vc-fixed figure").First;
        var index = int.Parse((await firstFixed.GetAttributeAsync("data-index"))!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(Enumerable.Range(0, TestImages).First(i => v1[i] != labels[i] && v2[i] == labels[i]), index);
        await Expect(firstFixed.Locator(".label")).ToHaveTextAsync(BuiltInDatasets.FashionMnist.ClassNames[labels[index]]);
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#vc-body img')].every(i => i.complete && i.naturalWidth === 28)", null, new() { Timeout = 60_000 });
        await DashboardFixture.ScreenshotAsync(page, "version-compare");

        var axe = await page.RunAxe(new AxeRunOptions { RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
        var serious = axe.Violations.Where(v => v.Impact is "serious" or "critical").ToArray();
        Assert.True(serious.Length == 0, string.Join("; ", serious.Select(v => $"{v.Id} at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}")));
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }
}
