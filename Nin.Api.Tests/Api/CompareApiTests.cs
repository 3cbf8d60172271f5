using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Models;
using Nin.Api.Training;
using Nin.Model.Evaluation;
using SkiaSharp;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Api;

/// <summary><c>GET /models/{name}/compare</c> on versions trained here, checked against each version's own evaluation and samples.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class CompareApiTests
{
    private const int SplitSize = 48;

    private static Uri Relative(string path) => new(path, UriKind.Relative);

    /// <summary>Small runs that still learn something (the d2l recipe's NiN predicts one class for its first epochs), so two of them disagree.</summary>
    private static object Run(int seed, int epochs, int testImages = SplitSize, int trainImages = 256) =>
        new { recipe = "robust", epochs, batchSize = 16, imageSize = 67, maxTrainImages = trainImages, maxTestImages = testImages, modelName = "cmp", seed, activate = false };

    private static async Task<int> TrainAsync(HttpClient client, object body)
    {
        var job = await FinishedAsync(client, await PostAsync(client, body));
        Assert.True(job.Status == JobStatus.Succeeded, $"the run failed: {job.Error}");
        return job.ModelVersion!.Value;
    }

    [Fact]
    public async Task Two_trained_versions_compare_image_by_image_as_their_own_evaluations_and_samples_say()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var a = await TrainAsync(client, Run(seed: 1, epochs: 1));
        var b = await TrainAsync(client, Run(seed: 2, epochs: 2));
        var other = await TrainAsync(client, Run(seed: 3, epochs: 1, testImages: SplitSize / 2, trainImages: 32));

        // What each version's own routes say, image by image.
        async Task<Dictionary<int, TestSample>> SamplesAsync(int version) =>
            (await client.GetFromJsonAsync<TestSamplesResponse>(Relative($"/models/cmp/versions/{version}/samples?limit={EvaluationApi.MaxSamples}"), TrainingApiTests.Json))!
                .Items.ToDictionary(s => s.Index);
        var (samplesA, samplesB) = (await SamplesAsync(a), await SamplesAsync(b));
        Assert.Equal(SplitSize, samplesA.Count);
        var expectedFixed = samplesA.Keys.Where(i => !samplesA[i].Correct && samplesB[i].Correct).Order().ToArray();
        var expectedBroken = samplesA.Keys.Where(i => samplesA[i].Correct && !samplesB[i].Correct).Order().ToArray();
        var evaluationA = await client.GetFromJsonAsync<ModelEvaluation>(Relative($"/models/cmp/versions/{a}/evaluation"), TrainingApiTests.Json);
        var evaluationB = await client.GetFromJsonAsync<ModelEvaluation>(Relative($"/models/cmp/versions/{b}/evaluation"), TrainingApiTests.Json);

        var comparison = await client.GetFromJsonAsync<VersionComparisonResponse>(Relative($"/models/cmp/compare?a={a}&b={b}&limit={CompareApi.MaxItems}"), TrainingApiTests.Json);
        var artifacts = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts"));
        await File.WriteAllTextAsync(Path.Combine(artifacts.FullName, "compare-cmp.json"), JsonSerializer.Serialize(comparison, TrainingApiTests.Json));
        Assert.True(expectedFixed.Length + expectedBroken.Length > 0, "the two runs agree on every test image: this test would show nothing");
        Assert.Equal(expectedFixed, comparison!.Fixed.Items.Select(s => s.Index));
        Assert.Equal(expectedBroken, comparison.Broken.Items.Select(s => s.Index));
        Assert.Equal((expectedFixed.Length, expectedBroken.Length), (comparison.Fixed.Total, comparison.Broken.Total));
        Assert.All(comparison.Fixed.Items.Concat(comparison.Broken.Items), s =>
        {
            Assert.Equal(samplesA[s.Index].TrueLabel, s.TrueLabel);
            Assert.Equal(samplesA[s.Index].PredictedLabel, s.PredictedA);
            Assert.Equal(samplesB[s.Index].PredictedLabel, s.PredictedB);
            Assert.Equal($"/models/cmp/versions/{b}/samples/{s.Index}", s.Image);
        });

        // The figures are the versions' own evaluations; every change is b − a.
        Assert.Equal((a, b), (comparison.A.Version, comparison.B.Version));
        Assert.Equal((evaluationA!.Accuracy, evaluationB!.Accuracy), (comparison.A.Accuracy, comparison.B.Accuracy));
        Assert.Equal(evaluationA.Confusion, comparison.A.Confusion);
        Assert.Equal(evaluationB.Confusion, comparison.B.Confusion);
        Assert.Equal((SplitSize, "fashion-mnist"), (comparison.B.TestImages, comparison.B.Dataset));
        Assert.Equal(evaluationB.Accuracy - evaluationA.Accuracy, comparison.AccuracyDelta, 12);
        Assert.Equal((expectedFixed.Length - expectedBroken.Length) / (double)SplitSize, comparison.AccuracyDelta, 12);
        Assert.Equal(evaluationA.Classes, comparison.Classes);
        for (var c = 0; c < comparison.Classes.Count; c++)
        {
            var d = comparison.PerClass[c];
            Assert.Equal((evaluationA.PerClass[c].Recall, evaluationB.PerClass[c].Recall), (d.RecallA, d.RecallB));
            Assert.Equal((evaluationA.PerClass[c].Precision, evaluationB.PerClass[c].Precision), (d.PrecisionA, d.PrecisionB));
            Assert.Equal(d.RecallB - d.RecallA, d.RecallDelta, 12);
            Assert.Equal(d.PrecisionB - d.PrecisionA, d.PrecisionDelta, 12);
            Assert.Equal(evaluationA.PerClass[c].Support, d.Support);
        }

        // The thumbnails are the test images themselves.
        var shown = comparison.Fixed.Items.Concat(comparison.Broken.Items).Select(s => s.Image).Take(3).DefaultIfEmpty($"/models/cmp/versions/{b}/samples/0");
        foreach (var image in shown)
        {
            using var response = await client.GetAsync(Relative(image));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
            using var decoded = SKBitmap.Decode(await response.Content.ReadAsByteArrayAsync());
            using var expected = SKBitmap.Decode(TestImages.FashionImage(int.Parse(image[(image.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal((28, 28), (decoded.Width, decoded.Height));
            Assert.Equal(expected.GetPixel(14, 14).Red, decoded.GetPixel(14, 14).Red);
            Assert.Equal(expected.GetPixel(10, 20).Red, decoded.GetPixel(10, 20).Red);
        }

        await ExpectProblemAsync(client, $"/models/cmp/versions/{b}/samples/{SplitSize}", HttpStatusCode.NotFound);
        await ExpectProblemAsync(client, "/models/cmp/versions/99/samples/0", HttpStatusCode.NotFound);

        // limit cuts the lists, never the totals; a version against itself changes nothing.
        var one = await client.GetFromJsonAsync<VersionComparisonResponse>(Relative($"/models/cmp/compare?a={a}&b={b}&limit=1"), TrainingApiTests.Json);
        Assert.Equal((comparison.Fixed.Total, comparison.Broken.Total, 1), (one!.Fixed.Total, one.Broken.Total, one.Limit));
        Assert.Equal(comparison.Fixed.Items.Take(1), one.Fixed.Items);
        var none = await client.GetFromJsonAsync<VersionComparisonResponse>(Relative($"/models/cmp/compare?a={a}&b={b}&limit=0"), TrainingApiTests.Json);
        Assert.Empty(none!.Fixed.Items.Concat(none.Broken.Items));
        Assert.Equal(comparison.Fixed.Total, none.Fixed.Total);
        var same = await client.GetFromJsonAsync<VersionComparisonResponse>(Relative($"/models/cmp/compare?a={b}&b={b}"), TrainingApiTests.Json);
        Assert.Equal((0, 0, 0, 0.0), (same!.Fixed.Total, same.Broken.Total, same.ChangedWrong, same.AccuracyDelta));
        Assert.All(same.PerClass, d => Assert.Equal((0.0, 0.0), (d.RecallDelta, d.PrecisionDelta)));

        // Another test split: 409 saying what differs. No evaluation: 409 pointing at POST .../evaluate.
        var split = await ExpectProblemAsync(client, $"/models/cmp/compare?a={a}&b={other}", HttpStatusCode.Conflict);
        Assert.Equal("testImages", split.GetProperty("differs").GetString());
        File.Delete(Path.Combine(factory.Home, "models", "cmp", other.ToString(System.Globalization.CultureInfo.InvariantCulture), EvaluationFiles.EvaluationFile));
        var unevaluated = await ExpectProblemAsync(client, $"/models/cmp/compare?a={a}&b={other}", HttpStatusCode.Conflict);
        Assert.Contains($"POST /models/cmp/versions/{other}/evaluate", unevaluated.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("none", unevaluated.GetProperty("evaluation").GetString());
        var otherFolder = Path.Combine(factory.Home, "models", "cmp", other.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await File.WriteAllTextAsync(Path.Combine(otherFolder, Nin.Model.Checkpoints.Checkpoint.MetadataFile), "{ not json");
        var damaged = await ExpectProblemAsync(client, $"/models/cmp/compare?a={other}&b={a}", HttpStatusCode.Conflict);
        Assert.Equal("The model version is damaged.", damaged.GetProperty("title").GetString());

        // Unknown versions and models: 404; a bad query: 400.
        await ExpectProblemAsync(client, $"/models/cmp/compare?a={a}&b=99", HttpStatusCode.NotFound);
        await ExpectProblemAsync(client, "/models/no-such-model/compare?a=1&b=1", HttpStatusCode.NotFound);
        foreach (var query in new[] { $"a={a}", $"b={b}", $"a={a}&b=x", $"a=0&b={b}", $"a={a}&b={b}&limit=-1", $"a={a}&b={b}&limit={CompareApi.MaxItems + 1}" })
        {
            await ExpectProblemAsync(client, $"/models/cmp/compare?{query}", HttpStatusCode.BadRequest);
        }

        await ExpectProblemAsync(client, "/models/Not_Valid/compare?a=1&b=1", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task A_page_of_thumbnails_reads_the_test_split_once_and_each_is_its_test_image()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();
        var thumbnails = factory.Services.GetRequiredService<TestSampleThumbnails>();
        int[] indices = [.. Enumerable.Range(0, 40).Select(i => i * 250)];

        // As a comparison page asks: all at once.
        var answers = await Task.WhenAll(indices.Select(async i =>
        {
            using var response = await client.GetAsync(Relative($"/models/fashion-mnist/versions/1/samples/{i}"));
            return (Index: i, response.StatusCode, response.Content.Headers.ContentType?.MediaType, response.Headers.CacheControl?.Private, Png: await response.Content.ReadAsByteArrayAsync());
        }));
        Assert.All(answers, a => Assert.Equal((HttpStatusCode.OK, "image/png", true), (a.StatusCode, a.MediaType, a.Private)));
        Assert.Equal(1, thumbnails.SplitReads);
        foreach (var answer in answers.Where((_, k) => k % 8 == 0))
        {
            using var decoded = SKBitmap.Decode(answer.Png);
            using var expected = SKBitmap.Decode(TestImages.FashionImage(answer.Index));
            Assert.Equal((28, 28), (decoded.Width, decoded.Height));
            Assert.Equal(expected.GetPixel(14, 14).Red, decoded.GetPixel(14, 14).Red);
            Assert.Equal(expected.GetPixel(7, 21).Red, decoded.GetPixel(7, 21).Red);
        }

        using (var again = await client.GetAsync(Relative("/models/fashion-mnist/versions/1/samples/250")))
        {
            Assert.Equal(answers[1].Png, await again.Content.ReadAsByteArrayAsync());
        }

        Assert.Equal(1, thumbnails.SplitReads);
        await ExpectProblemAsync(client, "/models/fashion-mnist/versions/1/samples/10000", HttpStatusCode.NotFound);
        await ExpectProblemAsync(client, "/models/fashion-mnist/versions/1/samples/-1", HttpStatusCode.NotFound);
    }

    private static async Task<JsonElement> ExpectProblemAsync(HttpClient client, string url, HttpStatusCode expected)
    {
        using var response = await client.GetAsync(Relative(url));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{url}: {(int)response.StatusCode}, expected {(int)expected}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
