using System.Net;
using System.Net.Http.Json;
using Nin.Api.Models;
using Nin.Api.Training;
using Nin.Model.Evaluation;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>Confusion matrix, per-class figures and labelled test images of model versions.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class EvaluationApiTests
{
    private static Uri Relative(string path) => new(path, UriKind.Relative);

    /// <summary>The evaluation at <paramref name="location"/> once there is one (newer than <paramref name="after"/> when given).</summary>
    private static async Task<ModelEvaluation> WaitForEvaluationAsync(HttpClient client, string location, TimeSpan timeout, DateTimeOffset? after = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            using var response = await client.GetAsync(Relative(location));
            if (response.StatusCode == HttpStatusCode.OK
                && (await response.Content.ReadFromJsonAsync<ModelEvaluation>(TrainingApiTests.Json))! is var evaluation
                && (after is null || evaluation.EvaluatedAt > after))
            {
                return evaluation;
            }

            Assert.True(response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.OK, $"{location}: {response.StatusCode}");
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"No evaluation at {location} after {timeout}.");
            }

            await Task.Delay(500);
        }
    }

    [Fact]
    public async Task The_shipped_model_evaluated_on_all_10000_test_images_matches_its_recorded_accuracy_and_lists_its_mistakes()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();
        var models = await client.GetFromJsonAsync<ModelsResponse>(Relative("/models"), TrainingApiTests.Json);
        var shipped = models!.Models.Single(m => m.Name == "fashion-mnist").Versions.Single(v => v.Active);
        var path = $"/models/fashion-mnist/versions/{shipped.Version}";

        // It ships with its evaluation (and predictions, so samples work at once); evaluating again recomputes it.
        var shippedEvaluation = await client.GetFromJsonAsync<ModelEvaluation>(Relative(path + "/evaluation"), TrainingApiTests.Json);
        using (var samples = await client.GetAsync(Relative(path + "/samples")))
        {
            Assert.Equal(HttpStatusCode.OK, samples.StatusCode);
        }

        using var accepted = await client.PostAsync(Relative(path + "/evaluate"), null);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal(path + "/evaluation", accepted.Headers.Location?.OriginalString);
        var body = await accepted.Content.ReadFromJsonAsync<EvaluationAccepted>(TrainingApiTests.Json);
        Assert.False(string.IsNullOrEmpty(body!.HangfireJobId));

        var evaluation = await WaitForEvaluationAsync(client, path + "/evaluation", TimeSpan.FromMinutes(8), shippedEvaluation!.EvaluatedAt);
        Assert.Equal(shippedEvaluation.Confusion, evaluation.Confusion); // the shipped file is what evaluating gives
        var artifacts = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts"));
        await File.WriteAllTextAsync(Path.Combine(artifacts.FullName, "evaluation-fashion-mnist.json"), System.Text.Json.JsonSerializer.Serialize(evaluation, Nin.Model.Checkpoints.ModelMetadata.JsonOptions));

        Assert.Equal(shipped.Classes, evaluation.Classes);
        Assert.Equal(10_000, evaluation.TestImages);
        Assert.Equal(10, evaluation.Confusion.Count);
        Assert.All(evaluation.Confusion, row => Assert.Equal(10, row.Count));
        var total = evaluation.Confusion.Sum(r => r.Sum());
        var diagonal = Enumerable.Range(0, 10).Sum(i => evaluation.Confusion[i][i]);
        Assert.Equal(10_000, total);
        Assert.Equal(shipped.TestAccuracy!.Value, (double)diagonal / total, 6);
        Assert.Equal((double)diagonal / total, evaluation.Accuracy, 9);

        // Fashion-MNIST's test split has 1,000 images of each class; precision and recall follow from the matrix.
        Assert.All(evaluation.PerClass, c => Assert.Equal(1_000, c.Support));
        for (var c = 0; c < 10; c++)
        {
            var column = evaluation.Confusion.Sum(r => r[c]);
            Assert.Equal(evaluation.Confusion[c][c] / 1_000.0, evaluation.PerClass[c].Recall, 9);
            Assert.Equal((double)evaluation.Confusion[c][c] / column, evaluation.PerClass[c].Precision, 9);
        }

        // The shirt is Fashion-MNIST's hardest class for every NiN: its recall is the lowest.
        Assert.Equal("Shirt", evaluation.PerClass.MinBy(c => c.Recall)!.Name);

        var wrong = await client.GetFromJsonAsync<TestSamplesResponse>(Relative(path + "/samples?onlyWrong=true&limit=30"), TrainingApiTests.Json);
        Assert.Equal(10_000, wrong!.TestImages);
        Assert.Equal(10_000 - diagonal, wrong.Misclassified);
        Assert.Equal(30, wrong.Items.Count);
        Assert.All(wrong.Items, s =>
        {
            Assert.False(s.Correct);
            Assert.NotEqual(s.TrueLabel, s.PredictedLabel);
            Assert.Equal(shipped.Classes[TestImages.FashionLabel(s.Index)], s.TrueLabel);
            Assert.InRange(s.Probability, 0.1, 1);
            Assert.StartsWith("data:image/png;base64,", s.Image, StringComparison.Ordinal);
            using var png = SKBitmap.Decode(Convert.FromBase64String(s.Image["data:image/png;base64,".Length..]));
            Assert.Equal((28, 28), (png.Width, png.Height));
        });
        Assert.Equal(wrong.Items.Select(s => s.Probability).OrderDescending(), wrong.Items.Select(s => s.Probability));
        Assert.Equal(30, wrong.Items.Select(s => s.Index).Distinct().Count());

        // Without onlyWrong the mistakes still come first, then correctly classified images.
        var all = await client.GetFromJsonAsync<TestSamplesResponse>(Relative(path + $"/samples?limit={EvaluationApi.MaxSamples}"), TrainingApiTests.Json);
        Assert.Equal(EvaluationApi.MaxSamples, all!.Items.Count);
        Assert.Equal(wrong.Items.Select(s => s.Index), all.Items.Take(30).Select(s => s.Index));

        // The gallery's picture is the test image itself.
        var first = wrong.Items[0];
        using var decoded = SKBitmap.Decode(Convert.FromBase64String(first.Image["data:image/png;base64,".Length..]));
        using var expected = SKBitmap.Decode(TestImages.FashionImage(first.Index, SKEncodedImageFormat.Png));
        Assert.Equal(expected.GetPixel(14, 14).Red, decoded.GetPixel(14, 14).Red);
        Assert.Equal(expected.GetPixel(10, 20).Red, decoded.GetPixel(10, 20).Red);
    }

    [Fact]
    public async Task Training_stores_an_evaluation_that_agrees_with_the_runs_test_accuracy()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();
        using var response = await client.PostAsJsonAsync(Relative("/train"), new
        {
            dataset = "fashion-mnist", epochs = 1, batchSize = 32, imageSize = 67, seed = 5,
            maxTrainImages = 256, maxTestImages = 120, modelName = "evaluated", activate = false,
        });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var jobId = (await response.Content.ReadFromJsonAsync<TrainAccepted>(TrainingApiTests.Json))!.JobId;
        var job = await TrainingApiTests.WaitForAsync(client, jobId, j => j.Status is JobStatus.Succeeded or JobStatus.Failed, TimeSpan.FromMinutes(4));
        Assert.Equal(JobStatus.Succeeded, job.Status);

        // Stored when the job succeeded, without asking.
        var evaluation = await client.GetFromJsonAsync<ModelEvaluation>(Relative($"/models/evaluated/versions/{job.ModelVersion}/evaluation"), TrainingApiTests.Json);
        Assert.Equal(120, evaluation!.TestImages);
        Assert.Equal(120, evaluation.PerClass.Sum(c => c.Support));
        Assert.Equal("fashion-mnist", evaluation.Dataset);
        var diagonal = Enumerable.Range(0, 10).Sum(i => evaluation.Confusion[i][i]);
        Assert.Equal(job.Epochs[^1].TestAccuracy, diagonal / 120.0, 9);

        var samples = await client.GetFromJsonAsync<TestSamplesResponse>(Relative($"/models/evaluated/versions/{job.ModelVersion}/samples?limit=200"), TrainingApiTests.Json);
        Assert.Equal(120, samples!.Items.Count);
        Assert.Equal(120 - diagonal, samples.Items.Count(s => !s.Correct));
        Assert.All(samples.Items.Take(samples.Misclassified), s => Assert.False(s.Correct));
        Assert.All(samples.Items.Skip(samples.Misclassified), s => Assert.True(s.Correct));

        // A damaged predictions file is "not evaluated" (404), never a 500.
        var versionDir = Path.Combine(factory.Home, "models", "evaluated", job.ModelVersion!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await File.WriteAllTextAsync(Path.Combine(versionDir, EvaluationFiles.PredictionsFile), """{"labels":[0,1],"predicted":[1,99],"probability":[0.5]}""");
        using var damaged = await client.GetAsync(Relative($"/models/evaluated/versions/{job.ModelVersion}/samples"));
        Assert.Equal(HttpStatusCode.NotFound, damaged.StatusCode);
    }

    [Fact]
    public async Task A_version_whose_dataset_is_not_here_cannot_be_evaluated_and_says_why()
    {
        var home = Directory.CreateTempSubdirectory("nin-eval-").FullName;
        ServingFixture.AddRandom(new Nin.Model.Checkpoints.ModelStore(Path.Combine(home, "models")), "norecipe", seed: 3);
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" }, home);
        using var client = factory.CreateClient();

        using var evaluate = await client.PostAsync(Relative("/models/norecipe/versions/1/evaluate"), null);
        Assert.Equal(HttpStatusCode.Conflict, evaluate.StatusCode);
        Assert.Equal("application/problem+json", evaluate.Content.Headers.ContentType?.MediaType);
        Assert.Contains("unrecorded dataset", await evaluate.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var evaluation = await client.GetAsync(Relative("/models/norecipe/versions/1/evaluation"));
        Assert.Equal(HttpStatusCode.NotFound, evaluation.StatusCode);
        Assert.Contains("Not evaluated yet", await evaluation.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/models/fashion-mnist/versions/99/evaluation", "GET", HttpStatusCode.NotFound)]
    [InlineData("/models/fashion-mnist/versions/99/samples", "GET", HttpStatusCode.NotFound)]
    [InlineData("/models/fashion-mnist/versions/99/evaluate", "POST", HttpStatusCode.NotFound)]
    [InlineData("/models/Bad..Name/versions/1/evaluation", "GET", HttpStatusCode.BadRequest)]
    [InlineData("/models/fashion-mnist/versions/1/samples?limit=0", "GET", HttpStatusCode.BadRequest)]
    [InlineData("/models/fashion-mnist/versions/1/samples?limit=201", "GET", HttpStatusCode.BadRequest)]
    [InlineData("/models/fashion-mnist/versions/1/samples?limit=many", "GET", HttpStatusCode.BadRequest)]
    public async Task Unknown_versions_and_bad_parameters_get_problem_details(string url, string method, HttpStatusCode expected)
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();
        using var request = new HttpRequestMessage(new HttpMethod(method), Relative(url));
        using var response = await client.SendAsync(request);
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
