using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nin.Api.Tests.Api;
using SkiaSharp;

namespace Nin.Api.Tests.Contract;

/// <summary>
/// Exercises every operation of the API through real clients, its successes and its errors, so the contract test can
/// validate each answer against the document. One method per area; a new route gets its cases in its area's method
/// (the coverage check names the operation that has none). A case says which statuses it expects: an answer outside
/// them is reported as a surprise, beside the contract violations, and the sweep goes on.
/// </summary>
public sealed class ContractSweep(ContractRecording recording, Func<DelegatingHandler, HttpClient> createClient)
{
    public const string Key = "contract-key";

    /// <summary>A second key: its own rate-limit partition, spent on purpose to reach the 429s.</summary>
    public const string LimitsKey = "contract-limits-key";

    public const int TrainPermitLimit = 20;
    public const int PredictPermitLimit = 40;
    public const long MaxRequestBytes = 2 * 1024 * 1024;
    public const long MaxUploadBytes = 1024 * 1024;

    private readonly HttpClient keyed = createClient(new RecordingHandler(recording, Key));
    private readonly HttpClient anonymous = createClient(new RecordingHandler(recording));
    private readonly HttpClient wrongKey = createClient(new RecordingHandler(recording, "not-a-key"));
    private readonly HttpClient limits = createClient(new RecordingHandler(recording, LimitsKey));

    /// <summary>The service's settings for the sweep: keys on, small limits that a few requests reach.</summary>
    public static Dictionary<string, string?> Settings(string dataDirectory) => new()
    {
        ["Nin:DataDirectory"] = dataDirectory,
        ["Security:ApiKeys:0"] = Key,
        ["Security:ApiKeys:1"] = LimitsKey,
        ["RateLimiting:TrainPermitLimit"] = TrainPermitLimit.ToString(CultureInfo.InvariantCulture),
        ["RateLimiting:TrainWindowSeconds"] = "300",
        ["RateLimiting:PredictPermitLimit"] = PredictPermitLimit.ToString(CultureInfo.InvariantCulture),
        ["RateLimiting:PredictWindowSeconds"] = "300",
        ["Serving:MaxRequestBytes"] = MaxRequestBytes.ToString(CultureInfo.InvariantCulture),
        ["DatasetUploads:MaxUploadBytes"] = MaxUploadBytes.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Statuses the server answered that the sweep did not expect (the server changed, or the sweep is wrong).</summary>
    public List<string> Surprises { get; } = [];

    public string? UploadId { get; private set; }

    public async Task RunAsync()
    {
        await HealthAsync();
        await DatasetsAsync();
        await TrainingAsync();
        await SweepsAsync();
        await ModelsAsync();
        await PredictAsync();
        await KServeAsync();
        await RateLimitsAsync();
        await CleanupAsync();
    }

    /// <summary>The answers of a service with no model: the 503s of serving and readiness.</summary>
    public async Task WithoutModelAsync()
    {
        await Send("no model: readiness", anonymous, HttpMethod.Get, "/health/ready", null, 503);
        await Send("no model: predict", anonymous, HttpMethod.Post, "/predict", Images(Png(0)), 503);
        await Send("no model: KServe readiness", anonymous, HttpMethod.Get, "/v2/health/ready", null, 503);
    }

    private async Task HealthAsync()
    {
        await Send("health: liveness", anonymous, HttpMethod.Get, "/health/live", null, 200);
        await Send("health: readiness", anonymous, HttpMethod.Get, "/health/ready", null, 200);
        await Send("health: readiness is GET only", anonymous, HttpMethod.Delete, "/health/ready", null, 405);
        await Send("health: metrics", anonymous, HttpMethod.Get, "/metrics", null, 200);
        await Send("health: metrics is GET only", anonymous, HttpMethod.Post, "/metrics", Json("{}"), 405);
        await Send("routing: unknown path", anonymous, HttpMethod.Get, "/no-such-route", null, 404);
        await Send("routing: method not allowed", keyed, HttpMethod.Put, "/models", Json("{}"), 405);
    }

    private async Task DatasetsAsync()
    {
        await Send("datasets: list", anonymous, HttpMethod.Get, "/datasets", null, 200);
        await Send("datasets: upload without a key", anonymous, HttpMethod.Post, "/datasets", TestZips.Form(TestZips.TwoColourClasses()), 401);
        await Send("datasets: upload with a wrong key", wrongKey, HttpMethod.Post, "/datasets", TestZips.Form(TestZips.TwoColourClasses()), 403);
        await Send("datasets: upload JSON", keyed, HttpMethod.Post, "/datasets", Json("{\"file\":\"x\"}"), 415);
        await Send("datasets: upload without a file", keyed, HttpMethod.Post, "/datasets", Form(("name", "x")), 400);
        await Send("datasets: upload too large", keyed, HttpMethod.Post, "/datasets", TestZips.Form(new byte[MaxUploadBytes + 1024]), 413);
        var uploaded = await Send("datasets: upload", keyed, HttpMethod.Post, "/datasets", TestZips.Form(TestZips.TwoColourClasses(), "contract set"), 201);
        UploadId = (string?)uploaded?["id"];
        await Send("datasets: one upload", anonymous, HttpMethod.Get, $"/datasets/{UploadId}", null, 200);
        await Send("datasets: one built-in", anonymous, HttpMethod.Get, "/datasets/fashion-mnist", null, 200);
        await Send("datasets: unknown", anonymous, HttpMethod.Get, "/datasets/no-such-set", null, 404);
        await Send("datasets: delete a built-in", keyed, HttpMethod.Delete, "/datasets/fashion-mnist", null, 409);
        await Send("datasets: delete unknown", keyed, HttpMethod.Delete, "/datasets/no-such-set", null, 404);
        await Send("datasets: delete without a key", anonymous, HttpMethod.Delete, $"/datasets/{UploadId}", null, 401);
    }

    private async Task SweepsAsync()
    {
        await Send("sweeps: start without a key", anonymous, HttpMethod.Post, "/sweeps", Json("{}"), 401);
        var empty = await Send("sweeps: no search space", keyed, HttpMethod.Post, "/sweeps", Json("{}"), 400);
        Expect(empty?["errors"]?["space"] is not null, "sweeps: the 400 for a missing space names it", empty);
        var bad = await Send("sweeps: a setting that cannot be searched", keyed, HttpMethod.Post, "/sweeps", Json("{\"space\": {\"dataset\": {\"values\": [\"mnist\"]}}}"), 400);
        Expect(bad?["errors"]?["space.dataset"] is not null, "sweeps: the 400 names space.dataset", bad);
        await Send("sweeps: unknown field", keyed, HttpMethod.Post, "/sweeps", Json("{\"spaces\": {}}"), 400);
        var started = await Send("sweeps: start", keyed, HttpMethod.Post, "/sweeps", Json(JsonSerializer.Serialize(new
        {
            @base = new { dataset = UploadId, epochs = 1, batchSize = 4, imageSize = 67, maxTrainImages = 8, maxTestImages = 4, modelName = "contract-sweep" },
            space = new { learningRate = new { values = new[] { 0.05, 0.1 } } },
        })), 202);
        var sweepId = (string?)started?["sweepId"];
        await Send("sweeps: list", keyed, HttpMethod.Get, "/sweeps", null, 200);
        await Send("sweeps: list with a bad limit", keyed, HttpMethod.Get, "/sweeps?limit=0", null, 400);
        await Send("sweeps: one", keyed, HttpMethod.Get, $"/sweeps/{sweepId}", null, 200);
        await Send("sweeps: its runs table", keyed, HttpMethod.Get, $"/sweeps/{sweepId}?format=csv", null, 200);
        await Send("sweeps: in an unknown format", keyed, HttpMethod.Get, $"/sweeps/{sweepId}?format=xlsx", null, 400);
        await Send("sweeps: unknown", keyed, HttpMethod.Get, "/sweeps/0123456789ab", null, 404);
        await Send("sweeps: cancel", keyed, HttpMethod.Delete, $"/sweeps/{sweepId}", null, 202);
        await Send("sweeps: cancel again", keyed, HttpMethod.Delete, $"/sweeps/{sweepId}", null, 409);
        await Send("sweeps: cancel unknown", keyed, HttpMethod.Delete, "/sweeps/0123456789ab", null, 404);
    }

    private async Task TrainingAsync()
    {
        await Send("training: start without a key", anonymous, HttpMethod.Post, "/train", Json("{}"), 401);
        await Send("training: start with a wrong key", wrongKey, HttpMethod.Post, "/train", Json("{}"), 403);
        var typo = await Send("training: unknown field", keyed, HttpMethod.Post, "/train", Json("{\"epoch\": 1}"), 400);
        Expect(typo?["errors"]?["epoch"] is not null, "training: the 400 for an unknown field names it in errors.epoch", typo);
        await Send("training: field of the wrong type", keyed, HttpMethod.Post, "/train", Json("{\"epochs\": \"ten\"}"), 400);
        await Send("training: out of range", keyed, HttpMethod.Post, "/train", Json("{\"epochs\": 0, \"recipe\": \"nope\"}"), 400);
        await Send("training: not JSON", keyed, HttpMethod.Post, "/train", new StringContent("epochs=1", Encoding.UTF8, "text/plain"), 415);
        await Send("training: malformed JSON", keyed, HttpMethod.Post, "/train", Json("{\"epochs\": "), 400);

        // A run small enough to finish: its model version then has an evaluation and samples (the models area reads them).
        var started = await Send("training: start", keyed, HttpMethod.Post, "/train", Json(JsonSerializer.Serialize(new
        {
            dataset = UploadId, epochs = 1, batchSize = 4, imageSize = 67, maxTrainImages = 8, maxTestImages = 4, modelName = "contract-trained",
        })), 202);
        var jobId = (string?)started?["jobId"];
        await Send("training: list", keyed, HttpMethod.Get, "/train", null, 200);
        await Send("training: list without a key", anonymous, HttpMethod.Get, "/train", null, 401);
        await Send("training: runs table", keyed, HttpMethod.Get, "/train?format=csv", null, 200);
        await Send("training: a page of the runs table", keyed, HttpMethod.Get, "/train?format=csv&limit=1&status=Queued,Running,Succeeded", null, 200);
        await Send("training: list in an unknown format", keyed, HttpMethod.Get, "/train?format=xlsx", null, 400);
        await Send("training: recipes", keyed, HttpMethod.Get, "/train/recipes", null, 200);
        await Send("training: damaged records", keyed, HttpMethod.Get, "/train/damaged", null, 200);
        await Send("training: damaged records without a key", anonymous, HttpMethod.Get, "/train/damaged", null, 401);
        await Send("training: damaged records with a wrong key", wrongKey, HttpMethod.Get, "/train/damaged", null, 403);
        await Send("training: recipes without a key", anonymous, HttpMethod.Get, "/train/recipes", null, 401);
        await Send("training: a job without a key", anonymous, HttpMethod.Get, "/train/no-such-job", null, 401);
        await Send("training: cancel with a wrong key", wrongKey, HttpMethod.Delete, "/train/no-such-job", null, 403);
        await Send("training: unknown job", keyed, HttpMethod.Get, "/train/no-such-job", null, 404);
        await Send("training: cancel unknown job", keyed, HttpMethod.Delete, "/train/no-such-job", null, 404);
        var finished = await WaitForJobAsync(jobId);
        Expect((string?)finished?["status"] == "Succeeded", "training: the small run succeeds", finished);
        await Send("training: cancel a finished job", keyed, HttpMethod.Delete, $"/train/{jobId}", null, 409);

        // A queued or running job is cancelled (200 queued, 202 running).
        var second = await Send("training: start another", keyed, HttpMethod.Post, "/train", Json(JsonSerializer.Serialize(new
        {
            dataset = UploadId, epochs = 50, batchSize = 4, imageSize = 67, maxTrainImages = 8, maxTestImages = 4, modelName = "contract-cancelled",
        })), 202);
        await Send("training: cancel", keyed, HttpMethod.Delete, $"/train/{(string?)second?["jobId"]}", null, 200, 202);
        await WaitForJobAsync((string?)second?["jobId"]);
    }

    private async Task ModelsAsync()
    {
        await Send("models: list", anonymous, HttpMethod.Get, "/models", null, 200);
        await Send("models: one version", anonymous, HttpMethod.Get, "/models/fashion-mnist/versions/1", null, 200);
        await Send("models: unknown version", anonymous, HttpMethod.Get, "/models/fashion-mnist/versions/99", null, 404);
        await Send("models: name outside the rule", anonymous, HttpMethod.Get, "/models/Not_Valid/versions/1", null, 400);

        await Send("models: import without a key", anonymous, HttpMethod.Post, "/models/contract-import/versions", ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin.pt"), 401);
        await Send("models: import with a wrong key", wrongKey, HttpMethod.Post, "/models/contract-import/versions", ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin.pt"), 403);
        await Send("models: import JSON", keyed, HttpMethod.Post, "/models/contract-import/versions", Json("{}"), 415);
        await Send("models: import without classes", keyed, HttpMethod.Post, "/models/contract-import/versions", Form(("imageSize", "67")), 400);
        await Send("models: import", keyed, HttpMethod.Post, "/models/contract-import/versions", ModelTransferApiTests.ImportForm(PyTorchFixture.Weights, "nin.pt"), 201);

        await Send("models: activate without a key", anonymous, HttpMethod.Post, "/models/contract-import/versions/1/activate", null, 401);
        await Send("models: activate the active version (passes the promotion gate)", keyed, HttpMethod.Post, "/models/fashion-mnist/versions/1/activate", null, 200);
        await Send("models: activate refused by the promotion gate (imported weights: no evaluation)", keyed, HttpMethod.Post, "/models/contract-import/versions/1/activate", null, 409);
        await Send("models: activate, forced past the gate", keyed, HttpMethod.Post, "/models/contract-import/versions/1/activate?force=true", null, 200);
        await Send("models: activate the default again, forced", keyed, HttpMethod.Post, "/models/fashion-mnist/versions/1/activate?force=true", null, 200);
        await Send("models: activate unknown", keyed, HttpMethod.Post, "/models/fashion-mnist/versions/99/activate", null, 404);

        await Send("models: export ONNX", anonymous, HttpMethod.Get, "/models/fashion-mnist/versions/1/export?format=onnx", null, 200);
        await Send("models: export safetensors", anonymous, HttpMethod.Get, "/models/fashion-mnist/versions/1/export?format=safetensors", null, 200);
        await Send("models: export pytorch", keyed, HttpMethod.Get, "/models/contract-import/versions/1/export?format=pytorch", null, 200);
        await Send("models: export a non-active version without a key", anonymous, HttpMethod.Get, "/models/contract-import/versions/1/export?format=onnx", null, 401);
        await Send("models: export in an unknown format", anonymous, HttpMethod.Get, "/models/fashion-mnist/versions/1/export?format=zip", null, 400);
        await Send("models: export unknown", keyed, HttpMethod.Get, "/models/fashion-mnist/versions/99/export", null, 404);

        await Send("models: evaluate", keyed, HttpMethod.Post, "/models/contract-trained/versions/1/evaluate", null, 202);
        await Send("models: evaluate without a dataset", keyed, HttpMethod.Post, "/models/contract-import/versions/1/evaluate", null, 409);
        await Send("models: evaluate unknown", keyed, HttpMethod.Post, "/models/fashion-mnist/versions/99/evaluate", null, 404);
        await Send("models: evaluate without a key", anonymous, HttpMethod.Post, "/models/contract-trained/versions/1/evaluate", null, 401);
        await Send("models: evaluation", anonymous, HttpMethod.Get, "/models/contract-trained/versions/1/evaluation", null, 200);
        await Send("models: not evaluated", anonymous, HttpMethod.Get, "/models/contract-import/versions/1/evaluation", null, 404);
        await Send("models: samples", keyed, HttpMethod.Get, "/models/contract-trained/versions/1/samples?limit=2&onlyWrong=false", null, 200);
        await Send("models: samples of a non-active version without a key", anonymous, HttpMethod.Get, "/models/contract-trained/versions/1/samples?limit=2", null, 401);
        await Send("models: samples limit out of range", anonymous, HttpMethod.Get, "/models/contract-trained/versions/1/samples?limit=0", null, 400);
        await Send("models: samples unknown", keyed, HttpMethod.Get, "/models/fashion-mnist/versions/99/samples", null, 404);
        await Send("models: sample image", keyed, HttpMethod.Get, "/models/contract-trained/versions/1/samples/0", null, 200);
        await Send("models: sample image of a non-active version without a key", anonymous, HttpMethod.Get, "/models/contract-trained/versions/1/samples/0", null, 401);
        await Send("models: sample image beyond the test split", keyed, HttpMethod.Get, "/models/contract-trained/versions/1/samples/4", null, 404);
        await Send("models: sample image without a dataset", keyed, HttpMethod.Get, "/models/contract-import/versions/1/samples/0", null, 409);
        await Send("models: sample image of a name outside the rule", keyed, HttpMethod.Get, "/models/Not_Valid/versions/1/samples/0", null, 400);

        await Send("models: compare", anonymous, HttpMethod.Get, "/models/contract-trained/compare?a=1&b=1&limit=5", null, 200);
        await Send("models: compare with the shipped evaluation", anonymous, HttpMethod.Get, "/models/fashion-mnist/compare?a=1&b=1&limit=0", null, 200);
        await Send("models: compare without b", anonymous, HttpMethod.Get, "/models/contract-trained/compare?a=1", null, 400);
        await Send("models: compare limit out of range", anonymous, HttpMethod.Get, "/models/contract-trained/compare?a=1&b=1&limit=501", null, 400);
        await Send("models: compare unknown", anonymous, HttpMethod.Get, "/models/fashion-mnist/compare?a=1&b=99", null, 404);
        await Send("models: compare a version without an evaluation", anonymous, HttpMethod.Get, "/models/contract-import/compare?a=1&b=1", null, 409);

        await Send("models: traffic without a split", anonymous, HttpMethod.Get, "/models/fashion-mnist/traffic", null, 200);
        await Send("models: traffic of an unknown model", anonymous, HttpMethod.Get, "/models/nope/traffic", null, 404);
        await Send("models: traffic of a name outside the rule", anonymous, HttpMethod.Get, "/models/Not_Valid/traffic", null, 400);
        await Send("models: split without a key", anonymous, HttpMethod.Put, "/models/contract-import/traffic", Json("{\"routes\":[{\"version\":1,\"weight\":1}]}"), 401);
        await Send("models: split with a wrong key", wrongKey, HttpMethod.Put, "/models/contract-import/traffic", Json("{\"routes\":[{\"version\":1,\"weight\":1}]}"), 403);
        await Send("models: split", keyed, HttpMethod.Put, "/models/contract-import/traffic", Json("{\"routes\":[{\"version\":1,\"weight\":1}]}"), 200);
        await Send("models: split with a weight of 0", keyed, HttpMethod.Put, "/models/contract-import/traffic", Json("{\"routes\":[{\"version\":1,\"weight\":0}]}"), 400);
        await Send("models: split to an unknown version", keyed, HttpMethod.Put, "/models/contract-import/traffic", Json("{\"routes\":[{\"version\":9,\"weight\":1}]}"), 404);
        await Send("models: split as a form", keyed, HttpMethod.Put, "/models/contract-import/traffic", Form(("routes", "1")), 415);
        await Send("models: end a split without a key", anonymous, HttpMethod.Delete, "/models/contract-import/traffic", null, 401);
        await Send("models: end a split", keyed, HttpMethod.Delete, "/models/contract-import/traffic", null, 204);
        await Send("models: end a split of an unknown model", keyed, HttpMethod.Delete, "/models/nope/traffic", null, 404);

        await Send("models: quantization", anonymous, HttpMethod.Get, "/models/contract-trained/versions/1/quantization", null, 200);
        await Send("models: not quantized", anonymous, HttpMethod.Get, "/models/contract-import/versions/1/quantization", null, 404);
        await Send("models: quantization of a name outside the rule", anonymous, HttpMethod.Get, "/models/Not_Valid/versions/1/quantization", null, 400);
        await Send("models: quantize", keyed, HttpMethod.Post, "/models/contract-trained/versions/1/quantize", null, 202);
        await Send("models: quantize without a dataset", keyed, HttpMethod.Post, "/models/contract-import/versions/1/quantize", null, 409);
        await Send("models: quantize unknown", keyed, HttpMethod.Post, "/models/fashion-mnist/versions/99/quantize", null, 404);
        await Send("models: quantize without a key", anonymous, HttpMethod.Post, "/models/contract-trained/versions/1/quantize", null, 401);
    }

    private async Task PredictAsync()
    {
        await Send("predict: multipart", anonymous, HttpMethod.Post, "/predict?topK=2", Images(Png(0), Png(1)), 200);
        await Send("predict: raw image", anonymous, HttpMethod.Post, "/predict", Raw(TestImages.FashionImage(2), "image/png"), 200);
        await Send("predict: topK out of range", anonymous, HttpMethod.Post, "/predict?topK=0", Images(Png(0)), 400);
        await Send("predict: no image field", anonymous, HttpMethod.Post, "/predict", Form(("name", "x")), 400);
        await Send("predict: corrupt image", anonymous, HttpMethod.Post, "/predict", Raw(TestImages.Truncated(TestImages.FashionImage(3)), "image/png"), 400);
        await Send("predict: JSON", anonymous, HttpMethod.Post, "/predict", Json("{}"), 415);
        await Send("predict: not an image", anonymous, HttpMethod.Post, "/predict", Raw(Encoding.UTF8.GetBytes("plain text, not an image"), "image/png"), 400, 415);
        await Send("predict: a non-active version without a key", anonymous, HttpMethod.Post, "/predict?model=contract-import&version=1", Images(Png(0)), 401);
        await Send("predict: unknown model", keyed, HttpMethod.Post, "/predict?model=no-such-model", Images(Png(0)), 404);
        await Send("predict: too large", anonymous, HttpMethod.Post, "/predict", Raw(new byte[MaxRequestBytes + 1024], "image/png"), 413);
        var crossSite = Images(Png(0));
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/predict", UriKind.Relative)) { Content = crossSite })
        {
            request.Headers.Add("Sec-Fetch-Site", "cross-site");
            recording.Source = "predict: from another site's page";
            using var response = await anonymous.SendAsync(request);
            Expect((int)response.StatusCode == 403, "predict: a cross-site request is refused with 403", null);
        }
    }

    private async Task KServeAsync()
    {
        await Send("kserve: server metadata", anonymous, HttpMethod.Get, "/v2", null, 200);
        await Send("kserve: live", anonymous, HttpMethod.Get, "/v2/health/live", null, 200);
        await Send("kserve: ready", anonymous, HttpMethod.Get, "/v2/health/ready", null, 200);
        var metadata = await Send("kserve: model metadata", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist", null, 200);
        await Send("kserve: unknown model", anonymous, HttpMethod.Get, "/v2/models/no-such-model", null, 404);
        await Send("kserve: version metadata", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/1", null, 200);
        await Send("kserve: unknown version", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/99", null, 404);
        await Send("kserve: model ready", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/ready", null, 200);
        await Send("kserve: unknown model ready", anonymous, HttpMethod.Get, "/v2/models/no-such-model/ready", null, 404);
        await Send("kserve: version ready", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/1/ready", null, 200);
        await Send("kserve: non-active version ready without a key", anonymous, HttpMethod.Get, "/v2/models/contract-import/versions/1/ready", null, 401);
        await Send("kserve: unknown version ready", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/99/ready", null, 404);
        await Send("kserve: model config", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/config", null, 200);
        await Send("kserve: version config", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/1/config", null, 200);
        await Send("kserve: unknown model config", anonymous, HttpMethod.Get, "/v2/models/no-such-model/config", null, 404);
        await Send("kserve: unknown version config", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/99/config", null, 404);
        await Send("kserve: statistics", anonymous, HttpMethod.Get, "/v2/models/stats", null, 200);
        await Send("kserve: model statistics", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/stats", null, 200);
        await Send("kserve: version statistics", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/1/stats", null, 200);
        await Send("kserve: unknown model statistics", anonymous, HttpMethod.Get, "/v2/models/no-such-model/stats", null, 404);
        await Send("kserve: unknown version statistics", anonymous, HttpMethod.Get, "/v2/models/fashion-mnist/versions/99/stats", null, 404);
        await Send("kserve: repository index", anonymous, HttpMethod.Post, "/v2/repository/index", null, 200);
        await Send("kserve: repository index of loaded versions", anonymous, HttpMethod.Post, "/v2/repository/index", Json("{ \"ready\": true }"), 200);
        await Send("kserve: repository index with an unknown field", anonymous, HttpMethod.Post, "/v2/repository/index", Json("{ \"redy\": true }"), 400);
        await Send("kserve: repository index too large", anonymous, HttpMethod.Post, "/v2/repository/index", Json("{ \"ready\": true" + new string(' ', 5000) + "}"), 413);
        await Send("kserve: load the active model", anonymous, HttpMethod.Post, "/v2/repository/models/fashion-mnist/load", null, 200);
        await Send("kserve: load a non-active model without a key", anonymous, HttpMethod.Post, "/v2/repository/models/contract-import/load", null, 401);
        await Send("kserve: load a non-active model", keyed, HttpMethod.Post, "/v2/repository/models/contract-import/load", Json("{ \"parameters\": {} }"), 200);
        await Send("kserve: load an unknown model", keyed, HttpMethod.Post, "/v2/repository/models/no-such-model/load", null, 404);
        await Send("kserve: load with a configuration", keyed, HttpMethod.Post, "/v2/repository/models/contract-import/load", Json("{ \"parameters\": { \"config\": \"{}\" } }"), 400);
        await Send("kserve: load request too large", keyed, HttpMethod.Post, "/v2/repository/models/contract-import/load", Json("{" + new string(' ', 5000) + "}"), 413);
        await Send("kserve: unload the active model", keyed, HttpMethod.Post, "/v2/repository/models/fashion-mnist/unload", null, 409);
        await Send("kserve: unload without a key", anonymous, HttpMethod.Post, "/v2/repository/models/contract-import/unload", null, 401);
        await Send("kserve: unload an unknown model", keyed, HttpMethod.Post, "/v2/repository/models/no-such-model/unload", null, 404);
        await Send("kserve: unload a malformed request", keyed, HttpMethod.Post, "/v2/repository/models/contract-import/unload", Json("{ \"nope\": 1 }"), 400);
        await Send("kserve: unload", keyed, HttpMethod.Post, "/v2/repository/models/contract-import/unload", null, 200);

        // A key that is sent must be valid on every /v2 route: 403, as on /train.
        foreach (var (method, url) in new[]
        {
            (HttpMethod.Get, "/v2/health/live"), (HttpMethod.Get, "/v2/health/ready"), (HttpMethod.Get, "/v2/models/stats"),
            (HttpMethod.Post, "/v2/repository/index"), (HttpMethod.Post, "/v2/repository/models/fashion-mnist/load"),
            (HttpMethod.Post, "/v2/repository/models/fashion-mnist/unload"), (HttpMethod.Get, "/v2/models/fashion-mnist/config"),
            (HttpMethod.Get, "/v2/models/fashion-mnist/versions/1/config"), (HttpMethod.Get, "/v2/models/fashion-mnist/stats"),
            (HttpMethod.Get, "/v2/models/fashion-mnist/versions/1/stats"),
        })
        {
            await Send($"kserve: {method} {url} with a wrong key", wrongKey, method, url, null, 403);
        }

        var png = Convert.ToBase64String(TestImages.FashionImage(0));
        var images = $$"""{ "id": "c1", "inputs": [ { "name": "images", "shape": [1], "datatype": "BYTES", "data": ["{{png}}"] } ] }""";
        await Send("kserve: infer images", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/infer", Json(images), 200);
        await Send("kserve: infer a version", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/versions/1/infer", Json(images), 200);
        var shape = metadata?["inputs"]?[0]?["shape"]?.AsArray().Select(n => (long)n!).ToArray() ?? [-1, 1, 28, 28];
        var (c, s) = (shape[1], shape[2]);
        var floats = new float[c * s * s];
        var fp32 = $$"""{ "inputs": [ { "name": "input", "shape": [1, {{c}}, {{s}}, {{s}}], "datatype": "FP32", "parameters": { "binary_data_size": {{floats.Length * 4}} } } ], "outputs": [ { "name": "label", "parameters": { "binary_data": true } } ] }""";
        await Send("kserve: binary tensors both ways", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/infer", Binary(fp32, floats), 200);
        await Send("kserve: infer malformed", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/infer", Json("{ \"inputs\": 3 }"), 400);
        await Send("kserve: infer unknown field", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/infer", Json("{ \"inputz\": [] }"), 400);
        await Send("kserve: infer bad base64", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/versions/1/infer", Json(images.Replace(png, "not base64!", StringComparison.Ordinal)), 400);
        await Send("kserve: infer unknown model", anonymous, HttpMethod.Post, "/v2/models/no-such-model/infer", Json(images), 404);
        await Send("kserve: infer unknown version", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/versions/99/infer", Json(images), 404);
        await Send("kserve: infer a non-active version without a key", anonymous, HttpMethod.Post, "/v2/models/contract-import/versions/1/infer", Json(images), 401);
        await Send("kserve: infer a non-active model without a key", anonymous, HttpMethod.Post, "/v2/models/contract-import/infer", Json(images), 401);
        await Send("kserve: infer too large", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/infer", Raw(new byte[MaxRequestBytes + 1024], "application/json"), 413);
        await Send("kserve: infer a version too large", anonymous, HttpMethod.Post, "/v2/models/fashion-mnist/versions/1/infer", Raw(new byte[MaxRequestBytes + 1024], "application/json"), 413);
    }

    /// <summary>The 429s: the limits key spends its own budget with cheap refused requests until the limiter answers.</summary>
    private async Task RateLimitsAsync()
    {
        await SpendAsync("limits: train", () => Json("{\"epochs\": 0}"), "/train", TrainPermitLimit);
        await SpendAsync("limits: predict", () => Images(Png(0)), "/predict?topK=0", PredictPermitLimit);
        await SpendAsync("limits: infer", () => Json("{}"), "/v2/models/fashion-mnist/infer", PredictPermitLimit);
        await SpendAsync("limits: infer a version", () => Json("{}"), "/v2/models/fashion-mnist/versions/1/infer", PredictPermitLimit);
    }

    private async Task SpendAsync(string source, Func<HttpContent> content, string url, int permits)
    {
        for (var i = 0; i <= 2 * permits + 2; i++)
        {
            recording.Source = source;
            using var response = await limits.PostAsync(new Uri(url, UriKind.Relative), content());
            if ((int)response.StatusCode == 429)
            {
                return;
            }
        }

        Surprises.Add($"{source}: no 429 after {(2 * permits) + 3} requests to {url} (limit {permits})");
    }

    private async Task CleanupAsync()
    {
        await Send("models: delete without a key", anonymous, HttpMethod.Delete, "/models/contract-import/versions/1", null, 401);
        await Send("models: delete the active version", keyed, HttpMethod.Delete, "/models/fashion-mnist/versions/1", null, 409);
        await Send("models: delete unknown", keyed, HttpMethod.Delete, "/models/fashion-mnist/versions/99", null, 404);
        await Send("models: delete", keyed, HttpMethod.Delete, "/models/contract-import/versions/1", null, 204);
        await Send("datasets: delete", keyed, HttpMethod.Delete, $"/datasets/{UploadId}", null, 204);
    }

    private async Task<JsonNode?> WaitForJobAsync(string? jobId)
    {
        if (jobId is null)
        {
            return null; // the start already was a surprise
        }

        var deadline = DateTime.UtcNow.AddMinutes(3);
        JsonNode? job = null;
        while (DateTime.UtcNow < deadline)
        {
            job = await Send("training: follow a job", keyed, HttpMethod.Get, $"/train/{jobId}", null, 200);
            if ((string?)job?["status"] is "Succeeded" or "Failed" or "Cancelled")
            {
                return job;
            }

            await Task.Delay(250);
        }

        Surprises.Add($"training: job {jobId} did not end within 3 minutes: {job?.ToJsonString()}");
        return job;
    }

    /// <summary>Sends one case; an answer outside <paramref name="expected"/> is a surprise. Returns the JSON body, if any.</summary>
    public async Task<JsonNode?> Send(string source, HttpClient client, HttpMethod method, string url, HttpContent? content, params int[] expected)
    {
        recording.Source = source;
        using var request = new HttpRequestMessage(method, new Uri(url, UriKind.Relative)) { Content = content };
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if (!expected.Contains((int)response.StatusCode))
        {
            Surprises.Add($"{source}: {method} {url} answered {(int)response.StatusCode}, expected {string.Join(" or ", expected)}: {(text.Length > 400 ? text[..400] : text)}");
        }

        try
        {
            return RecordingHandler.IsJson(response.Content.Headers.ContentType?.MediaType) && text.Length > 0 ? JsonNode.Parse(text) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void Expect(bool condition, string what, JsonNode? body)
    {
        if (!condition)
        {
            Surprises.Add($"{what}: {body?.ToJsonString()}");
        }
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static ByteArrayContent Raw(byte[] data, string type)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    /// <summary>A KServe binary-extension body: the JSON, then the tensor's little-endian bytes.</summary>
    private static ByteArrayContent Binary(string json, float[] values)
    {
        var head = Encoding.UTF8.GetBytes(json);
        var body = new byte[head.Length + (values.Length * 4)];
        head.CopyTo(body, 0);
        Buffer.BlockCopy(values, 0, body, head.Length, values.Length * 4);
        var content = Raw(body, "application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", head.Length.ToString(CultureInfo.InvariantCulture));
        return content;
    }

    private static (string, string, byte[], string) Png(int index) => ("images", $"item-{index}.png", TestImages.FashionImage(index, SKEncodedImageFormat.Png), "image/png");

    private static MultipartFormDataContent Images(params (string Field, string FileName, byte[] Data, string Type)[] files) => PredictApiTests.Form(files);

    private static MultipartFormDataContent Form(params (string Key, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        foreach (var (key, value) in fields)
        {
            form.Add(new StringContent(value), key);
        }

        return form;
    }
}
