using System.Text;
using Newtonsoft.Json;
using Nin.Api.Tests.Api;
using NJsonSchema;
using NSwag;

namespace Nin.Api.Tests.Contract;

/// <summary>
/// The service as its OpenAPI document describes it: the sweep's real answers (successes and errors) against the
/// documented statuses, content types and schemas; every operation exercised; every documented example request
/// sent and answered with its documented status; every documented example valid against its own schema.
/// </summary>
public sealed class ContractFixture : IAsyncLifetime
{
    private readonly string dataDirectory = Directory.CreateTempSubdirectory("nin-contract-data-").FullName;

    public ContractRecording Recording { get; } = new();

    public ContractRecording ModelLessRecording { get; } = new();

    public NinApiFactory Factory { get; private set; } = null!;

    public ApiContract Contract { get; private set; } = null!;

    public ApiContract ModelLessContract { get; private set; } = null!;

    public IReadOnlyList<string> Surprises { get; private set; } = [];

    public string DocumentJson { get; private set; } = "";

    public async Task InitializeAsync()
    {
        // Uploads go to a data folder of its own; fashion-mnist is linked in (evaluation and the built-in listing need it).
        Directory.CreateSymbolicLink(Path.Combine(dataDirectory, "fashion-mnist"), Path.Combine(TestPaths.SharedDatasets, "fashion-mnist"));
        Factory = new NinApiFactory(ContractSweep.Settings(dataDirectory));
        using (var client = Factory.CreateClient())
        {
            DocumentJson = await client.GetStringAsync(new Uri("/swagger/v1/swagger.json", UriKind.Relative));
        }

        var artifacts = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts"));
        await File.WriteAllTextAsync(Path.Combine(artifacts.FullName, "swagger-contract.json"), DocumentJson);
        Contract = await ApiContract.LoadAsync(DocumentJson);

        var sweep = new ContractSweep(Recording, handler => Factory.CreateDefaultClient(handler));
        await sweep.RunAsync();
        var surprises = new List<string>(sweep.Surprises);

        // A service without a model (and without keys): the 503s.
        using (var empty = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" }))
        {
            using (var client = empty.CreateClient())
            {
                ModelLessContract = await ApiContract.LoadAsync(await client.GetStringAsync(new Uri("/swagger/v1/swagger.json", UriKind.Relative)));
            }

            var modelLess = new ContractSweep(ModelLessRecording, handler => empty.CreateDefaultClient(handler));
            await modelLess.WithoutModelAsync();
            surprises.AddRange(modelLess.Surprises);
        }

        Surprises = surprises;
        await File.WriteAllTextAsync(Path.Combine(artifacts.FullName, "contract-report.txt"), Report());
    }

    /// <summary>Every exchange with its verdict, and the documented statuses the sweep never saw.</summary>
    public string Report()
    {
        var text = new StringBuilder();
        foreach (var (contract, recording) in new[] { (Contract, Recording), (ModelLessContract, ModelLessRecording) })
        {
            foreach (var exchange in recording.Exchanges)
            {
                var problems = contract.Check(exchange);
                text.AppendLine((problems.Count == 0 ? "ok   " : "FAIL ") + exchange);
                foreach (var problem in problems)
                {
                    text.AppendLine("     " + problem);
                }
            }
        }

        text.AppendLine();
        text.AppendLine("Documented statuses no exchange showed:");
        var seen = Recording.Exchanges.Concat(ModelLessRecording.Exchanges)
            .Select(e => (Operation: Contract.Find(e.Method, e.Path), e.Status)).Where(e => e.Operation is not null)
            .Select(e => (e.Operation!.Id, e.Status.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToHashSet();
        foreach (var operation in Contract.Operations)
        {
            var missing = operation.Operation.ActualResponses.Keys.Where(code => !seen.Contains((operation.Id, code))).ToArray();
            if (missing.Length > 0)
            {
                text.AppendLine($"  {operation}: {string.Join(", ", missing)}");
            }
        }

        return text.ToString();
    }

    public async Task DisposeAsync()
    {
        Factory.Dispose();
        try
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }

        await Task.CompletedTask;
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ContractTests(ContractFixture fixture) : IClassFixture<ContractFixture>
{
    /// <summary>Operations that no test can make succeed, each with the reason. Keep this short.</summary>
    private static readonly Dictionary<string, string> NoSuccessCase = new(StringComparer.Ordinal);

    [Fact]
    public void Every_answer_of_the_sweep_matches_the_document()
    {
        var problems = fixture.Recording.Exchanges.SelectMany(fixture.Contract.Check)
            .Concat(fixture.ModelLessRecording.Exchanges.SelectMany(fixture.ModelLessContract.Check))
            .ToList();
        Assert.True(fixture.Recording.Exchanges.Count > 100, $"the sweep made only {fixture.Recording.Exchanges.Count} requests");
        Assert.True(problems.Count == 0, $"{problems.Count} answers break the document (artifacts/contract-report.txt has every exchange):\n" + string.Join('\n', problems));
    }

    [Fact]
    public void The_sweep_got_the_answers_it_expected()
    {
        Assert.True(fixture.Surprises.Count == 0, "The server answered differently from what the sweep expects:\n" + string.Join('\n', fixture.Surprises));
    }

    /// <summary>A route added without a sweep case fails here, by name.</summary>
    [Fact]
    public void Every_operation_is_exercised_with_a_success_and_with_its_client_errors()
    {
        var exchanges = fixture.Recording.Exchanges.Concat(fixture.ModelLessRecording.Exchanges).ToArray();
        var problems = new List<string>();
        foreach (var operation in fixture.Contract.Operations)
        {
            var statuses = exchanges.Where(e => fixture.Contract.Find(e.Method, e.Path) == operation).Select(e => e.Status).ToArray();
            if (!statuses.Any(s => s is >= 200 and < 300) && !NoSuccessCase.ContainsKey(operation.Id))
            {
                problems.Add($"{operation}: no successful answer was validated; add a case to ContractSweep (its area's method)");
            }

            var clientErrors = operation.Operation.ActualResponses.Keys.Where(k => k.StartsWith('4')).ToArray();
            if (clientErrors.Length > 0 && !statuses.Any(s => s is >= 400 and < 500))
            {
                problems.Add($"{operation}: documents {string.Join(", ", clientErrors)} but no client error was validated; add a case to ContractSweep");
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    /// <summary>Every example in the document (request bodies, responses, parameters) is valid against its own schema.</summary>
    [Fact]
    public void Every_documented_example_matches_its_schema()
    {
        var problems = new List<string>();
        var examples = 0;
        foreach (var operation in fixture.Contract.Operations)
        {
            foreach (var (type, media) in operation.Operation.ActualRequestBody?.Content ?? new Dictionary<string, OpenApiMediaType>())
            {
                Check($"{operation} request {type}", media);
            }

            foreach (var (code, response) in operation.Operation.ActualResponses)
            {
                foreach (var (type, media) in response.ActualResponse.Content)
                {
                    Check($"{operation} {code} {type}", media);
                }
            }
        }

        Assert.True(examples >= 5, $"only {examples} examples in the document");
        Assert.True(problems.Count == 0, string.Join('\n', problems));

        void Check(string where, OpenApiMediaType media)
        {
            foreach (var example in Examples(media))
            {
                examples++;
                if (media.Schema is not null && RecordingHandler.IsJson(where.Split(' ')[^1]))
                {
                    problems.AddRange(ApiContract.Validate(media.Schema, example).Select(e => $"{where}: example breaks its schema at {e}"));
                }
            }
        }
    }

    /// <summary>
    /// Every documented JSON request example is sent as it stands (path parameters from their documented examples, with
    /// a key) and must be answered with a documented success; the answer is validated like the sweep's.
    /// </summary>
    [Fact]
    public async Task Every_documented_example_request_gets_its_documented_success()
    {
        var recording = new ContractRecording();
        using var client = fixture.Factory.CreateDefaultClient(new RecordingHandler(recording, ContractSweep.Key));
        var sent = 0;
        var problems = new List<string>();
        foreach (var operation in fixture.Contract.Operations)
        {
            var body = operation.Operation.ActualRequestBody;
            if (body is null || !body.Content.TryGetValue("application/json", out var media))
            {
                continue;
            }

            var path = operation.Path;
            foreach (var parameter in operation.Operation.ActualParameters.Where(p => p.Kind == OpenApiParameterKind.Path))
            {
                if (parameter.Example is null)
                {
                    problems.Add($"{operation}: has a request example but path parameter '{parameter.Name}' has no example to send it with");
                    continue;
                }

                path = path.Replace("{" + parameter.Name + "}", Uri.EscapeDataString(Convert.ToString(parameter.Example, System.Globalization.CultureInfo.InvariantCulture)!), StringComparison.Ordinal);
            }

            foreach (var example in Examples(media))
            {
                recording.Source = $"documented example of {operation.Id}";
                using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(operation.Method), new Uri(path, UriKind.Relative)) { Content = ContractSweep.Json(example) });
                sent++;
                var status = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
                var answer = await response.Content.ReadAsStringAsync();
                if (!status.StartsWith('2') || !operation.Operation.ActualResponses.ContainsKey(status))
                {
                    problems.Add($"{operation}: its documented example got {status}, not a documented success: {answer}");
                }

                if (answer.StartsWith('{') && (string?)Newtonsoft.Json.Linq.JObject.Parse(answer)["jobId"] is { } jobId)
                {
                    await client.DeleteAsync(new Uri($"/train/{jobId}", UriKind.Relative)); // the example queues a run: cancel it
                }
            }
        }

        problems.AddRange(recording.Exchanges.SelectMany(fixture.Contract.Check));
        Assert.True(sent >= 3, $"only {sent} example requests in the document");
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_document_describes_the_api_key_and_where_it_is_needed()
    {
        var document = fixture.Contract.Document;
        Assert.Contains(document.Components.SecuritySchemes, s => s.Value.Type == OpenApiSecuritySchemeType.ApiKey && s.Value.Name == "X-Api-Key" && s.Value.In == OpenApiSecurityApiKeyLocation.Header);
        Assert.Contains(document.Components.SecuritySchemes, s => s.Value.Type == OpenApiSecuritySchemeType.Http && s.Value.Scheme == "bearer");

        // The operations the key middleware guards, as the sweep met them: answered 401 without a key.
        var guarded = fixture.Recording.Exchanges.Where(e => e.Status == 401 && e.Source.Contains("without a key", StringComparison.Ordinal) && !e.Source.Contains("non-active", StringComparison.Ordinal))
            .Select(e => fixture.Contract.Find(e.Method, e.Path)!).Distinct().ToArray();
        Assert.True(guarded.Length >= 8, $"only {guarded.Length} guarded operations met");
        foreach (var operation in guarded)
        {
            Assert.True(operation.Operation.ActualSecurity?.Any(r => r.Count > 0) == true, $"{operation} needs a key but documents no security requirement");
            Assert.Contains("401", operation.Operation.ActualResponses.Keys);
            Assert.Contains("403", operation.Operation.ActualResponses.Keys);
        }
    }

    private static IEnumerable<string> Examples(OpenApiMediaType media)
    {
        if (media.Example is { } example)
        {
            yield return JsonConvert.SerializeObject(example);
        }

        foreach (var named in media.Examples?.Values ?? [])
        {
            if (named.Value is { } value)
            {
                yield return JsonConvert.SerializeObject(value);
            }
        }
    }
}

/// <summary>The schema's rules and the server's validators are the same rules: at and beyond each boundary they agree.</summary>
[UnitTests]
public sealed class SchemaRuleTests(Api.OpenApiTests.Fixture fixture) : IClassFixture<Api.OpenApiTests.Fixture>
{
    [Theory]
    [InlineData("fashion-mnist")]
    [InlineData("a")]
    [InlineData("v1.2_b-c")]
    [InlineData("Upper")]
    [InlineData("-leading")]
    [InlineData(".hidden")]
    [InlineData("active.json")]
    [InlineData("active.json.bak")]
    [InlineData("model.tmp")]
    [InlineData("white space")]
    [InlineData("")]
    public void The_model_name_pattern_is_the_stores_rule(string name)
    {
        Assert.Equal(Nin.Model.Checkpoints.ModelStore.IsValidName(name), System.Text.RegularExpressions.Regex.IsMatch(name, Nin.Model.Checkpoints.ModelStore.NamePatternText));
        Assert.Equal(Nin.Model.Checkpoints.ModelStore.IsValidName(new string('a', 64)), System.Text.RegularExpressions.Regex.IsMatch(new string('a', 64), Nin.Model.Checkpoints.ModelStore.NamePatternText));
        Assert.DoesNotMatch(Nin.Model.Checkpoints.ModelStore.NamePatternText, new string('a', 65));
    }

    [Theory]
    [InlineData("epochs", "1")]
    [InlineData("epochs", "0")]
    [InlineData("epochs", "1000")]
    [InlineData("epochs", "1001")]
    [InlineData("learningRate", "0")]
    [InlineData("learningRate", "0.0001")]
    [InlineData("learningRate", "10")]
    [InlineData("learningRate", "10.5")]
    [InlineData("momentum", "0")]
    [InlineData("momentum", "0.99")]
    [InlineData("momentum", "1")]
    [InlineData("momentum", "-0.1")]
    [InlineData("weightDecay", "1")]
    [InlineData("weightDecay", "1.01")]
    [InlineData("shift", "0.5")]
    [InlineData("shift", "0.51")]
    [InlineData("labelSmoothing", "0.5")]
    [InlineData("labelSmoothing", "-0.01")]
    [InlineData("maxTrainImages", "1")]
    [InlineData("maxTrainImages", "0")]
    [InlineData("recipe", "\"robust\"")]
    [InlineData("recipe", "\"fast\"")]
    [InlineData("architecture", "\"nin-bn\"")]
    [InlineData("architecture", "\"resnet\"")]
    [InlineData("schedule", "\"cosine\"")]
    [InlineData("schedule", "\"step\"")]
    [InlineData("modelName", "\"my-model\"")]
    [InlineData("modelName", "\"My Model\"")]
    [InlineData("device", "\"cpu\"")]
    [InlineData("device", "\"tpu\"")]
    public async Task The_train_request_schema_and_validator_agree(string field, string value)
    {
        var json = $$"""{ "batchSize": 4, "imageSize": 67, "{{field}}": {{value}} }""";
        var contract = await ApiContract.LoadAsync(await fixture.JsonAsync());
        var schema = contract.Document.Components.Schemas["TrainRequest"];
        var schemaAccepts = !ApiContract.Validate(schema, json).Any();
        var request = System.Text.Json.JsonSerializer.Deserialize<Nin.Api.Training.TrainRequest>(json, System.Text.Json.JsonSerializerOptions.Web)!;
        var validator = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Nin.Api.Training.TrainRequestValidator>(fixture.Factory.Services);
        var (_, errors) = validator.Validate(request);
        Assert.True(schemaAccepts == (errors.Count == 0),
            $"{json}: the schema {(schemaAccepts ? "accepts" : "refuses")} it, the validator {(errors.Count == 0 ? "accepts" : "refuses: " + string.Join("; ", errors.SelectMany(e => e.Value)))}");
    }
}
