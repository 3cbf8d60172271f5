using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Microsoft.Extensions.DependencyInjection;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>
/// A new version takes the same steps whichever way it is born (trained, imported, shipped): stored, its ONNX file
/// written, its evaluation beside it when it comes with one, the activation rule; a failed on-demand evaluation says so.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ModelVersionBirthTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public async Task A_trained_version_is_stored_with_its_ONNX_file_and_the_evaluation_of_its_last_test_pass()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        var job = await FinishedAsync(client, await PostAsync(client, Tiny("born", epochs: 2)));
        Assert.Equal(JobStatus.Succeeded, job.Status);

        var info = factory.Services.GetRequiredService<ModelStore>().Find("born", 1)!;
        Assert.True(File.Exists(Path.Combine(info.Directory, OnnxCache.FileName(info.Metadata))), "the ONNX file is written when the version is born");
        var evaluation = await client.GetFromJsonAsync<ModelEvaluation>(new Uri("/models/born/versions/1/evaluation", UriKind.Relative));
        Assert.Equal(32, evaluation!.TestImages);
        Assert.Equal(job.Epochs[^1].TestAccuracy, evaluation.Accuracy); // the last epoch's own test pass
        Assert.True(evaluation.EvaluatedAt <= job.FinishedAt);
        // The activation rule: nothing else was served, so it is served if it learned, and not if it has warnings.
        Assert.Equal(job.Warnings is not { Count: > 0 }, info.Active);
    }

    [Fact]
    public async Task An_imported_version_gets_its_ONNX_file_and_the_activation_rule_as_a_trained_one()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        using var content = ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin.pt");
        using var response = await client.PostAsync(new Uri("/models/imported/versions", UriKind.Relative), content);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());

        var info = factory.Services.GetRequiredService<ModelStore>().Find("imported", 1)!;
        Assert.True(File.Exists(Path.Combine(info.Directory, OnnxCache.FileName(info.Metadata))), "an import writes the ONNX file too");
        Assert.True(info.Active, "nothing was served: the imported version is");
    }

    [Fact]
    public async Task The_shipped_model_comes_with_its_evaluation_and_ONNX_file()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();
        var models = await client.GetFromJsonAsync<JsonElement>(new Uri("/models", UriKind.Relative));
        Assert.Equal("fashion-mnist", models.GetProperty("active").GetProperty("name").GetString());

        using var response = await client.GetAsync(new Uri("/models/fashion-mnist/versions/1/evaluation", UriKind.Relative));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync()); // before: 404 until someone POSTed evaluate
        var evaluation = (await response.Content.ReadFromJsonAsync<ModelEvaluation>())!;
        Assert.Equal(10000, evaluation.TestImages);
        Assert.Equal(10, evaluation.Classes.Count);
        var recorded = models.GetProperty("models")[0].GetProperty("versions")[0].GetProperty("testAccuracy").GetDouble();
        Assert.InRange(evaluation.Accuracy, recorded - 0.01, recorded + 0.01);

        using var samples = await client.GetAsync(new Uri("/models/fashion-mnist/versions/1/samples?limit=3", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, samples.StatusCode);
        var info = factory.Services.GetRequiredService<ModelStore>().Find("fashion-mnist", 1)!;
        Assert.True(File.Exists(Path.Combine(info.Directory, OnnxCache.FileName(info.Metadata))));
    }

    [Fact]
    public void A_seeded_folder_an_operator_chose_is_served_even_with_warnings()
    {
        // A KServe storageUri or the shipped folder is the version the operator wants served: a "did not learn" warning
        // is logged, but the pod must not stay unready (before: /v2/health/ready answered 503 for ever).
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        var folder = Directory.CreateTempSubdirectory("nin-seed-").FullName;
        try
        {
            using (var network = new NinNetwork(1, 10))
            {
                Checkpoint.Save(network, new ModelMetadata
                {
                    Name = "chosen",
                    Version = 1,
                    ClassNames = Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames,
                    InputChannels = 1,
                    ImageSize = 67,
                    Preprocessing = new PreprocessingInfo { Channels = 1 },
                    Warnings = ["did not learn: test accuracy 0.100 is at chance."],
                }, folder);
            }

            var store = factory.Services.GetRequiredService<ModelStore>();
            Assert.Null(store.Active);
            var info = factory.Services.GetRequiredService<Nin.Api.Models.ModelVersionPublisher>().Seed(folder);
            Assert.True(info.Active, "the chosen folder is served although it has warnings");
            Assert.Equal(new ActiveModel("chosen", 1), store.Active);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Evaluate_is_409_when_the_dataset_files_are_missing()
    {
        var empty = Directory.CreateTempSubdirectory("nin-no-data-").FullName;
        try
        {
            using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:DataDirectory"] = empty });
            using var client = factory.CreateClient();
            using var response = await client.PostAsync(new Uri("/models/fashion-mnist/versions/1/evaluate", UriKind.Relative), null);
            var problem = await SecurityApiTests.AssertProblem(response, HttpStatusCode.Conflict); // before: 202, then a job that failed unseen
            Assert.Contains("missing", problem.Title, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task A_failed_on_demand_evaluation_is_reported_by_GET_evaluation_with_the_reason()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        // A three-channel model that says it was trained on MNIST (one channel): its evaluation cannot run.
        using (var network = new NinNetwork(3, 10))
        {
            factory.Services.GetRequiredService<ModelStore>().Add(network, new ModelMetadata
            {
                Name = "mismatch",
                ClassNames = Nin.Model.Data.BuiltInDatasets.Mnist.ClassNames,
                InputChannels = 3,
                ImageSize = 67,
                Preprocessing = new PreprocessingInfo { Channels = 3 },
                Recipe = new TrainingRecipe { Dataset = "mnist", TestImages = 20 },
            }, activate: false);
        }

        using (var before = await client.GetAsync(new Uri("/models/mismatch/versions/1/evaluation", UriKind.Relative)))
        {
            Assert.Equal("none", Json(await before.Content.ReadAsStringAsync()).GetProperty("evaluation").GetString());
        }

        using (var evaluate = await client.PostAsync(new Uri("/models/mismatch/versions/1/evaluate", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, evaluate.StatusCode);
        }

        JsonElement body = default;
        await WaitUntilAsync(() =>
        {
            using var response = client.GetAsync(new Uri("/models/mismatch/versions/1/evaluation", UriKind.Relative)).Result;
            body = Json(response.Content.ReadAsStringAsync().Result);
            return response.StatusCode == HttpStatusCode.NotFound && body.GetProperty("evaluation").GetString() == "failed";
        }, TimeSpan.FromSeconds(60), "the evaluation reported failed");
        Assert.Equal("The evaluation failed.", body.GetProperty("title").GetString());
        Assert.Contains("channel", body.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("channel", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
