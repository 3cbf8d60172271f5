using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Models;
using Nin.Api.Security;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The promotion gate on <c>POST /models/{name}/versions/{v}/activate</c> and on a training job's <c>activate: true</c>:
/// versions with evaluations made by hand on the first Fashion-MNIST test images (right on a chosen share of them, a
/// wrong answer being the next class), so the figures are known exactly and nothing is evaluated.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class PromotionGateApiTests
{
    private const int Split = 48;
    private const string AdminKey = "gate-admin-key-0123456789";
    private const string TrainKey = "gate-train-key-0123456789";

    private static readonly int[] Labels = [.. BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, 1, Split).Test.Labels.Select(l => (int)l)];

    private static Uri Relative(string path) => new(path, UriKind.Relative);

    /// <summary>
    /// A random-weight version of <paramref name="name"/> whose stored evaluation, on the first <paramref name="images"/>
    /// test images, is right on the images <paramref name="right"/> picks.
    /// </summary>
    private static ModelVersionInfo AddEvaluated(ModelStore store, string name, Func<int, bool> right, IReadOnlyList<string>? warnings = null, int images = Split)
    {
        ModelVersionInfo info;
        using (var network = new NinNetwork(1, 10))
        {
            info = store.Add(network, new ModelMetadata
            {
                Name = name,
                ClassNames = BuiltInDatasets.FashionMnist.ClassNames,
                ImageSize = 67,
                Preprocessing = new PreprocessingInfo(),
                Recipe = new TrainingRecipe { Dataset = "fashion-mnist", TestImages = images },
                Warnings = warnings,
            }, activate: false, activateIfNoneActive: false);
        }

        int[] labels = [.. Labels.Take(images)];
        int[] predicted = [.. labels.Select((l, i) => right(i) ? l : (l + 1) % 10)];
        var predictions = new TestPredictions(labels, predicted, [.. predicted.Select(_ => 0.9f)]);
        EvaluationFiles.Save(info.Directory, ModelEvaluation.FromPredictions(BuiltInDatasets.FashionMnist.ClassNames, predictions, "fashion-mnist"), predictions);
        return info;
    }

    private static double Accuracy(Func<int, bool> right) => Enumerable.Range(0, Split).Count(right) / (double)Split;

    private static async Task<JsonElement> ActivateAsync(HttpClient client, string name, int version, HttpStatusCode expected, bool force = false)
    {
        using var response = await client.PostAsync(Relative($"/models/{name}/versions/{version}/activate{(force ? "?force=true" : "")}"), null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"activate {name} v{version}{(force ? " (forced)" : "")}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static string[] Codes(JsonElement problem) => [.. problem.GetProperty("reasons").EnumerateArray().Select(r => r.GetProperty("code").GetString()!)];

    [Fact]
    public async Task The_first_activation_passes_a_worse_version_is_refused_with_both_figures_and_a_better_one_passes()
    {
        using var factory = Factory(new() { ["RateLimiting:Enabled"] = "false" });
        using var client = factory.CreateClient();
        var store = factory.Services.GetRequiredService<ModelStore>();
        Func<int, bool> good = i => i % 8 != 0, worse = i => i % 4 != 0, better = i => i % 16 != 0;
        AddEvaluated(store, "gate", good);       // v1
        AddEvaluated(store, "gate", worse);      // v2
        AddEvaluated(store, "gate", better);     // v3

        // Nothing served: the first activation passes and says there was nothing to compare with.
        var first = await ActivateAsync(client, "gate", 1, HttpStatusCode.OK);
        Assert.Equal(PromotionGate.NoComparison, first.GetProperty("promotion").GetProperty("comparedOn").GetString());
        Assert.True(first.GetProperty("promotion").GetProperty("allowed").GetBoolean());

        // The active version itself passes again.
        await ActivateAsync(client, "gate", 1, HttpStatusCode.OK);

        // Worse by 12.5 points: 409 with both accuracies, the accuracy change and every class's recall change.
        var refused = await ActivateAsync(client, "gate", 2, HttpStatusCode.Conflict);
        Assert.Equal("The promotion gate refused the version.", refused.GetProperty("title").GetString());
        Assert.Contains(PromotionGate.Accuracy, Codes(refused));
        Assert.Equal(PromotionGate.SameSplit, refused.GetProperty("comparedOn").GetString());
        Assert.Equal(Accuracy(worse), refused.GetProperty("candidate").GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(Accuracy(good), refused.GetProperty("active").GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(2, refused.GetProperty("candidate").GetProperty("version").GetInt32());
        Assert.Equal(1, refused.GetProperty("active").GetProperty("version").GetInt32());
        Assert.Equal(Accuracy(worse) - Accuracy(good), refused.GetProperty("accuracyDelta").GetDouble(), 12);
        var perClass = refused.GetProperty("perClass").EnumerateArray().ToArray();
        Assert.Equal(BuiltInDatasets.FashionMnist.ClassNames, perClass.Select(c => c.GetProperty("name").GetString()));
        Assert.Contains(perClass, c => c.GetProperty("recallDelta").GetDouble() < 0);
        Assert.All(perClass, c => Assert.Equal(c.GetProperty("recallB").GetDouble() - c.GetProperty("recallA").GetDouble(), c.GetProperty("recallDelta").GetDouble(), 12));
        Assert.Contains("force=true", refused.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(new ActiveModel("gate", 1), store.Active);

        // Better: passes, compared on the same split, with its figures in the answer.
        var passed = await ActivateAsync(client, "gate", 3, HttpStatusCode.OK);
        var promotion = passed.GetProperty("promotion");
        Assert.Equal((PromotionGate.SameSplit, true), (promotion.GetProperty("comparedOn").GetString(), promotion.GetProperty("allowed").GetBoolean()));
        Assert.Equal(Accuracy(better) - Accuracy(good), promotion.GetProperty("accuracyDelta").GetDouble(), 12);
        Assert.Equal(new ActiveModel("gate", 3), store.Active);
        Assert.Empty(passed.GetProperty("forcedActivations").EnumerateArray());
    }

    [Fact]
    public async Task A_version_that_did_not_learn_is_refused_and_force_activates_it_and_is_recorded_on_the_version()
    {
        using var factory = Factory(new() { ["RateLimiting:Enabled"] = "false" });
        using var client = factory.CreateClient();
        var store = factory.Services.GetRequiredService<ModelStore>();
        AddEvaluated(store, "gate", i => i % 8 != 0);                                   // v1
        AddEvaluated(store, "gate", _ => true, ["did not learn: train loss 2.303 after epoch 2 is still at ln 10 = 2.303 (a uniform guess); try the robust recipe or a lower learning rate."]); // v2
        AddEvaluated(store, "gate", i => i % 4 != 0);                                   // v3: worse
        await ActivateAsync(client, "gate", 1, HttpStatusCode.OK);

        // Flagged: refused even though its figures are better.
        var refused = await ActivateAsync(client, "gate", 2, HttpStatusCode.Conflict);
        Assert.Equal([PromotionGate.DidNotLearn], Codes(refused));
        Assert.Contains("did not learn", refused.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(new ActiveModel("gate", 1), store.Active);

        // Forced: served, and the override is on the version, with the reasons it overrode.
        var forced = await ActivateAsync(client, "gate", 2, HttpStatusCode.OK, force: true);
        Assert.Equal(new ActiveModel("gate", 2), store.Active);
        Assert.False(forced.GetProperty("promotion").GetProperty("allowed").GetBoolean());
        var version = await client.GetFromJsonAsync<ModelVersionResponse>(Relative("/models/gate/versions/2"), TrainingApiTests.Json);
        var record = Assert.Single(version!.ForcedActivations!);
        Assert.Equal(("anonymous", "gate version 1"), (record.By, record.Replaced));
        Assert.Equal([PromotionGate.DidNotLearn], record.Overridden.Select(r => r.Code));
        Assert.True(DateTimeOffset.UtcNow - record.At < TimeSpan.FromMinutes(5));
        var listed = await client.GetFromJsonAsync<ModelsResponse>(Relative("/models"), TrainingApiTests.Json);
        Assert.Single(listed!.Models.Single(m => m.Name == "gate").Versions.Single(v => v.Version == 2).ForcedActivations!);

        // The worse v3 against the flagged v2 (perfect on the split): refused; forced, it is recorded too.
        Assert.Contains(PromotionGate.Accuracy, Codes(await ActivateAsync(client, "gate", 3, HttpStatusCode.Conflict)));
        await ActivateAsync(client, "gate", 3, HttpStatusCode.OK, force: true);
        Assert.Contains(PromotionGate.Accuracy, Assert.Single(ForcedActivations.Read(store.Find("gate", 3)!.Directory)).Overridden.Select(r => r.Code));
    }

    [Fact]
    public async Task Versions_of_another_split_are_compared_on_the_candidates_another_task_is_not_compared_and_unevaluated_weights_are_refused()
    {
        using var factory = Factory(new() { ["RateLimiting:Enabled"] = "false" });
        using var client = factory.CreateClient();
        var store = factory.Services.GetRequiredService<ModelStore>();
        AddEvaluated(store, "gate", i => i % 8 != 0);                            // v1: evaluated on 48 images
        AddEvaluated(store, "gate", _ => true, images: Split / 2);               // v2: on the first 24, right on all
        ServingFixture.AddRandom(store, "gate", seed: 3);                        // v3: random weights, no recipe, no evaluation
        using (var network = new NinNetwork(1, 3))
        {
            string[] pets = ["cat", "dog", "bird"];
            var info = store.Add(network, new ModelMetadata { Name = "pets", ClassNames = pets, ImageSize = 67, Preprocessing = new PreprocessingInfo(), Recipe = new TrainingRecipe { Dataset = "u-pets", TestImages = 6 } },
                activate: false, activateIfNoneActive: false);
            var predictions = new TestPredictions([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 1], [.. Enumerable.Repeat(0.9f, 6)]);
            EvaluationFiles.Save(info.Directory, ModelEvaluation.FromPredictions(pets, predictions, "u-pets"), predictions);
        }

        store.Activate("gate", 1);

        // Another number of test images: v1 is measured on v2's 24 images (its classes matched by name), and the answer says so.
        var measured = (await ActivateAsync(client, "gate", 2, HttpStatusCode.OK)).GetProperty("promotion");
        Assert.Equal(PromotionGate.CandidateSplit, measured.GetProperty("comparedOn").GetString());
        Assert.Contains("measured on the candidate's test split ('fashion-mnist', 24 images)", measured.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Equal((24, 24), (measured.GetProperty("active").GetProperty("testImages").GetInt32(), measured.GetProperty("candidate").GetProperty("testImages").GetInt32()));
        Assert.Equal(1.0, measured.GetProperty("candidate").GetProperty("accuracy").GetDouble());
        Assert.Equal(10, measured.GetProperty("perClass").GetArrayLength());
        Assert.Equal(Split, EvaluationFiles.ReadEvaluation(store.Find("gate", 1)!.Directory)!.TestImages); // v1's own evaluation is untouched

        // Weights with no recorded dataset cannot be evaluated: refused, saying so.
        var unevaluated = await ActivateAsync(client, "gate", 3, HttpStatusCode.Conflict);
        Assert.Equal([PromotionGate.NotEvaluated], Codes(unevaluated));
        Assert.Contains("cannot be evaluated here", unevaluated.GetProperty("reasons")[0].GetProperty("detail").GetString(), StringComparison.Ordinal);

        // An import asked to activate: the same gate; stored, not activated, the answer saying why.
        using (var form = ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin.pt", extra: ("activate", "true")))
        using (var imported = await client.PostAsync(Relative("/models/gate/versions"), form))
        {
            var body = await imported.Content.ReadAsStringAsync();
            Assert.True(imported.StatusCode == HttpStatusCode.Created, body);
            var version = JsonDocument.Parse(body).RootElement;
            Assert.False(version.GetProperty("active").GetBoolean());
            Assert.Equal([PromotionGate.NotEvaluated], Codes(version.GetProperty("promotion")));
            Assert.Equal(new ActiveModel("gate", 2), store.Active);
        }

        // Another class set: nothing to compare, so it passes and the answer says why.
        var other = (await ActivateAsync(client, "pets", 1, HttpStatusCode.OK)).GetProperty("promotion");
        Assert.Equal(PromotionGate.NoComparison, other.GetProperty("comparedOn").GetString());
        Assert.Contains("classifies other classes", other.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Equal(new ActiveModel("pets", 1), store.Active);
    }

    [Fact]
    public async Task The_OpenAPI_document_describes_force_and_the_gates_409()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        using var document = JsonDocument.Parse(await client.GetStringAsync(Relative("/swagger/v1/swagger.json")));
        var activate = document.RootElement.GetProperty("paths").GetProperty("/models/{name}/versions/{version}/activate").GetProperty("post");

        var force = activate.GetProperty("parameters").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "force");
        Assert.Equal("query", force.GetProperty("in").GetString());
        Assert.Contains("admin", force.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("promotion gate", activate.GetProperty("description").GetString(), StringComparison.Ordinal);
        var conflict = activate.GetProperty("responses").GetProperty("409").GetProperty("content").GetProperty("application/problem+json");
        var examples = conflict.GetProperty("examples").EnumerateObject().Select(e => e.Value.GetProperty("value")).ToArray();
        Assert.Contains(examples, e => e.GetProperty("reasons")[0].GetProperty("code").GetString() == PromotionGate.Accuracy);
        Assert.Contains(examples, e => e.GetProperty("reasons")[0].GetProperty("code").GetString() == PromotionGate.DidNotLearn);
        Assert.True(activate.GetProperty("responses").TryGetProperty("403", out _));
    }

    [Fact]
    public async Task With_the_gate_off_any_version_is_activated_as_before()
    {
        using var factory = Factory(new() { ["RateLimiting:Enabled"] = "false", ["Promotion:Enabled"] = "false" });
        using var client = factory.CreateClient();
        var store = factory.Services.GetRequiredService<ModelStore>();
        AddEvaluated(store, "gate", i => i % 8 != 0);
        AddEvaluated(store, "gate", _ => false, ["did not learn: test accuracy 0.000 is at chance (1/10 = 0.100)."]);
        store.Activate("gate", 1);

        var ungated = await ActivateAsync(client, "gate", 2, HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.Null, ungated.GetProperty("promotion").ValueKind);
        Assert.Equal(new ActiveModel("gate", 2), store.Active);
        Assert.Empty(ForcedActivations.Read(store.Find("gate", 2)!.Directory));
    }

    [Fact]
    public async Task Force_needs_the_admin_scope_when_keys_are_in_force_and_records_the_key()
    {
        using var factory = Factory(new()
        {
            ["RateLimiting:Enabled"] = "false",
            ["Security:Keys:0:Name"] = "ops",
            ["Security:Keys:0:Key"] = AdminKey,
            ["Security:Keys:0:Scopes:0"] = "admin",
            ["Security:Keys:1:Name"] = "trainer",
            ["Security:Keys:1:Key"] = TrainKey,
            ["Security:Keys:1:Scopes:0"] = "train",
        });
        var store = factory.Services.GetRequiredService<ModelStore>();
        AddEvaluated(store, "gate", i => i % 8 != 0);
        AddEvaluated(store, "gate", i => i % 2 != 0);
        store.Activate("gate", 1);
        using var trainer = SecurityApiTests.WithKey(factory, TrainKey);
        using var admin = SecurityApiTests.WithKey(factory, AdminKey);

        using (var denied = await trainer.PostAsync(Relative("/models/gate/versions/2/activate?force=true"), null))
        {
            var problem = await SecurityApiTests.AssertProblem(denied, HttpStatusCode.Forbidden);
            Assert.Contains("admin", problem.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(new ActiveModel("gate", 1), store.Active);
        Assert.Equal(PromotionGate.Accuracy, Codes(await ActivateAsync(admin, "gate", 2, HttpStatusCode.Conflict))[0]);
        await ActivateAsync(admin, "gate", 2, HttpStatusCode.OK, force: true);
        Assert.Equal("ops", Assert.Single(ForcedActivations.Read(store.Find("gate", 2)!.Directory)).By);
        Assert.Equal(ApiScope.Admin, ApiScopes.Required("POST", "/models/gate/versions/2/activate")!.Scope);
    }

    [Fact]
    public async Task A_training_job_whose_version_is_worse_succeeds_with_its_version_stored_but_not_activated()
    {
        using var factory = Factory(new() { ["RateLimiting:Enabled"] = "false" });
        using var client = factory.CreateClient();
        var store = factory.Services.GetRequiredService<ModelStore>();

        // Served: a version right on every image of the split the job is evaluated on (its first 48 test images).
        AddEvaluated(store, "gate", _ => true);
        store.Activate("gate", 1);

        // A small run that learns something (no did-not-learn warning), far from perfect: 4 epochs of 512 images (2 of 256
        // learnt on Intel cores but not on an AMD EPYC host, 0.104).
        var job = await FinishedAsync(client, await PostAsync(client, new
        {
            recipe = "robust", epochs = 4, batchSize = 16, imageSize = 67, maxTrainImages = 512, maxTestImages = Split, modelName = "gate", seed = 2, activate = true,
        }));
        Assert.True(job.Status == JobStatus.Succeeded, $"{job.Status}: {job.Error}");
        Assert.Equal(("gate", 2), (job.ModelName, job.ModelVersion));
        var warning = Assert.Single(job.Warnings!);
        Assert.StartsWith("not activated: the promotion gate refused gate version 2 (", warning, StringComparison.Ordinal);
        Assert.Contains(PromotionGate.Accuracy, warning, StringComparison.Ordinal);
        Assert.Contains("activate?force=true", warning, StringComparison.Ordinal);

        // Stored, evaluated, not served.
        Assert.Equal(new ActiveModel("gate", 1), store.Active);
        var version = await client.GetFromJsonAsync<ModelVersionResponse>(Relative("/models/gate/versions/2"), TrainingApiTests.Json);
        Assert.False(version!.Active);
        Assert.NotNull(EvaluationFiles.ReadEvaluation(store.Find("gate", 2)!.Directory));
    }
}
