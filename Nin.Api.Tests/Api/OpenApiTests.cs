using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace Nin.Api.Tests.Api;

[UnitTests]
public sealed partial class OpenApiTests(OpenApiTests.Fixture fixture) : IClassFixture<OpenApiTests.Fixture>
{
    public sealed class Fixture : IDisposable
    {
        private readonly Lazy<Task<string>> json;

        public Fixture()
        {
            Factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
            json = new(async () =>
            {
                using var client = Factory.CreateClient();
                var text = await client.GetStringAsync(new Uri("/swagger/v1/swagger.json", UriKind.Relative));
                var artifacts = Directory.CreateDirectory(Path.Combine(TestPaths.RepoRoot, "artifacts"));
                await File.WriteAllTextAsync(Path.Combine(artifacts.FullName, "swagger.json"), text);
                return text;
            });
        }

        public NinApiFactory Factory { get; }

        public Task<string> JsonAsync() => json.Value;

        public async Task<JsonObject> DocumentAsync() => JsonNode.Parse(await JsonAsync())!.AsObject();

        public void Dispose() => Factory.Dispose();
    }

    private static readonly string[] Methods = ["get", "put", "post", "delete", "patch", "head", "options"];

    [GeneratedRegex(@"\{([^}:=?]+)[^}]*\}")]
    private static partial Regex RouteParameter();

    /// <summary>An endpoint's route as an OpenAPI path: <c>/models/{name}/versions/{version:int}</c> → <c>/models/{name}/versions/{version}</c>.</summary>
    private static string ToPath(string raw)
    {
        var path = "/" + RouteParameter().Replace(raw, "{$1}").Trim('/');
        return path;
    }

    private IEnumerable<(string Path, string Method, RouteEndpoint Endpoint)> AppEndpoints()
    {
        var sources = fixture.Factory.Services.GetRequiredService<IEnumerable<EndpointDataSource>>();
        foreach (var endpoint in sources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>().Distinct())
        {
            var raw = endpoint.RoutePattern.RawText ?? "";
            if (raw.StartsWith("/hubs/", StringComparison.Ordinal) || raw.StartsWith("/hangfire", StringComparison.Ordinal) || raw.StartsWith("/swagger", StringComparison.Ordinal))
            {
                continue;
            }

            if (endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IExcludeFromDescriptionMetadata>()?.ExcludeFromDescription == true)
            {
                continue; // gRPC (documented by its .proto) and the /v2 fallback that answers unknown routes
            }

            var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
            foreach (var method in methods)
            {
                yield return (ToPath(raw), method.ToLowerInvariant(), endpoint);
            }
        }
    }

    [Fact]
    public async Task The_document_is_valid_OpenAPI()
    {
        var json = await fixture.JsonAsync();
        var result = OpenApiDocument.Parse(json, "json");

        Assert.NotNull(result.Document);
        Assert.Empty(result.Diagnostic?.Errors ?? []);
        Assert.Empty(result.Document.Validate(Microsoft.OpenApi.ValidationRuleSet.GetDefaultRuleSet()) ?? []);
        Assert.Equal("v1", result.Document.Info.Version);
    }

    [Fact]
    public async Task Every_endpoint_is_documented_with_summary_description_and_its_errors()
    {
        var doc = await fixture.DocumentAsync();
        var paths = doc["paths"]!.AsObject();
        var endpoints = AppEndpoints().ToArray();
        Assert.Contains(endpoints, e => e.Path == "/predict");
        Assert.Contains(endpoints, e => e.Path == "/train/{jobId}" && e.Method == "delete");

        var problems = new List<string>();
        foreach (var (path, method, endpoint) in endpoints)
        {
            var item = paths.FirstOrDefault(p => p.Key.TrimEnd('/') == path.TrimEnd('/') || (p.Key == "/" && path == "/")).Value;
            var operation = item?[method];
            if (operation is null)
            {
                problems.Add($"{method.ToUpperInvariant()} {path} ({endpoint.DisplayName}) is not in the document");
                continue;
            }

            if (string.IsNullOrWhiteSpace((string?)operation["summary"]))
            {
                problems.Add($"{method.ToUpperInvariant()} {path} has no summary");
            }

            if (string.IsNullOrWhiteSpace((string?)operation["description"]))
            {
                problems.Add($"{method.ToUpperInvariant()} {path} has no description");
            }

            var responses = operation["responses"]?.AsObject() ?? [];
            var codes = responses.Select(r => r.Key).ToArray();
            if (!codes.Any(c => c[0] == '2'))
            {
                problems.Add($"{method.ToUpperInvariant()} {path} documents no success response");
            }

            if (!codes.Any(c => c[0] is '4' or '5'))
            {
                problems.Add($"{method.ToUpperInvariant()} {path} documents no error response");
            }

            // Whatever names a resource in its route can be missing (unless the operation creates it: 201).
            if (path.Contains('{', StringComparison.Ordinal) && !codes.Contains("404") && !codes.Contains("201"))
            {
                problems.Add($"{method.ToUpperInvariant()} {path} takes an id but documents no 404");
            }

            foreach (var (code, response) in responses.Where(r => r.Key[0] is '4' or '5'))
            {
                var content = response?["content"]?.AsObject();
                if (endpoint.Metadata.GetMetadata<System.Reflection.MethodInfo>() is null)
                {
                    continue; // health checks and /metrics write their own bodies
                }

                if (content is null || content.Count == 0)
                {
                    problems.Add($"{method.ToUpperInvariant()} {path} {code} has no body schema");
                    continue;
                }

                foreach (var (type, media) in content)
                {
                    // The KServe routes' own errors are the protocol's { "error" }; what the layers before them refuse
                    // (keys, cross-site, content type) is ProblemDetails, told apart by the content type.
                    var expected = type == "application/json" && (path == "/v2" || path.StartsWith("/v2/", StringComparison.Ordinal)) ? "V2Error" : "ProblemDetails";
                    var schemaRef = (string?)media?["schema"]?["$ref"] ?? "";
                    if (!schemaRef.EndsWith(expected, StringComparison.Ordinal))
                    {
                        problems.Add($"{method.ToUpperInvariant()} {path} {code} {type} is '{schemaRef}', not {expected}");
                    }
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public async Task Predict_documents_a_file_upload_raw_images_its_query_and_an_example()
    {
        var doc = await fixture.DocumentAsync();
        var predict = doc["paths"]!["/predict"]!["post"]!;
        var content = predict["requestBody"]!["content"]!.AsObject();

        var images = content["multipart/form-data"]!["schema"]!["properties"]!["images"]!;
        Assert.Equal("array", (string?)images["type"]);
        Assert.Equal("string", (string?)images["items"]!["type"]);
        Assert.Equal("binary", (string?)images["items"]!["format"]);
        foreach (var raw in new[] { "image/png", "image/jpeg" })
        {
            Assert.Equal("binary", (string?)content[raw]!["schema"]!["format"]);
        }

        var parameters = predict["parameters"]!.AsArray().Select(p => ((string?)p!["name"], (string?)p["in"], (string?)p["description"])).ToArray();
        foreach (var name in new[] { "topK", "model", "version", "invert" })
        {
            Assert.Contains(parameters, p => p.Item1 == name && p.Item2 == "query" && !string.IsNullOrEmpty(p.Item3));
        }

        Assert.NotNull(predict["responses"]!["200"]!["content"]!["application/json"]!["example"]);
        Assert.Equal(["200", "400", "401", "403", "404", "413", "415", "429", "500", "503", "504"], predict["responses"]!.AsObject().Select(r => r.Key).Order());
    }

    [Fact]
    public async Task The_evaluation_routes_have_examples_and_their_errors()
    {
        var doc = await fixture.DocumentAsync();
        var paths = doc["paths"]!.AsObject();
        var evaluation = paths["/models/{name}/versions/{version}/evaluation"]!["get"]!;
        var example = evaluation["responses"]!["200"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal(3, example["confusion"]!.AsArray().Count);
        Assert.Equal("Trouser", (string?)example["perClass"]![1]!["name"]);
        Assert.NotNull(evaluation["responses"]!["404"]);

        var evaluate = paths["/models/{name}/versions/{version}/evaluate"]!["post"]!;
        Assert.Equal("/models/fashion-mnist/versions/1/evaluation", (string?)evaluate["responses"]!["202"]!["content"]!["application/json"]!["example"]!["location"]);
        Assert.Equal(["202", "400", "403", "404", "409", "500"], evaluate["responses"]!.AsObject().Select(r => r.Key).Where(k => k != "401").Order());

        var samples = paths["/models/{name}/versions/{version}/samples"]!["get"]!;
        Assert.False((bool?)samples["responses"]!["200"]!["content"]!["application/json"]!["example"]!["items"]![0]!["correct"]);
        var parameters = samples["parameters"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (string?)p!["description"]);
        Assert.Contains("1–200", parameters["limit"], StringComparison.Ordinal);
        Assert.Contains("misclassified", parameters["onlyWrong"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_comparison_documents_its_query_its_answer_and_why_it_refuses()
    {
        var doc = await fixture.DocumentAsync();
        var paths = doc["paths"]!.AsObject();
        var compare = paths["/models/{name}/compare"]!["get"]!;
        var responses = compare["responses"]!.AsObject();
        Assert.Equal(["200", "400", "404", "409", "500"], responses.Select(r => r.Key).Order());
        var example = responses["200"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal("/models/fashion-mnist/versions/2/samples/17", (string?)example["fixed"]!["items"]![0]!["image"]);
        Assert.Equal(2, responses["409"]!["content"]!["application/problem+json"]!["examples"]!.AsObject().Count);
        Assert.Equal(2, responses["400"]!["content"]!["application/problem+json"]!["examples"]!.AsObject().Count);
        Assert.NotNull(responses["404"]!["content"]!["application/problem+json"]!["examples"]);

        var parameters = compare["parameters"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!);
        Assert.True((bool?)parameters["a"]["required"]);
        Assert.True((bool?)parameters["b"]["required"]);
        Assert.Equal("500", parameters["limit"]["schema"]!["maximum"]!.ToString());
        Assert.Contains("0–500", (string?)parameters["limit"]["description"], StringComparison.Ordinal);

        var image = paths["/models/{name}/versions/{version}/samples/{index}"]!["get"]!;
        Assert.Equal("binary", (string?)image["responses"]!["200"]!["content"]!["image/png"]!["schema"]!["format"]);
        Assert.Equal(["200", "400", "401", "404", "409", "500"], image["responses"]!.AsObject().Select(r => r.Key).Order());
    }

    [Fact]
    public async Task Train_has_an_example_and_its_validation_problem()
    {
        var doc = await fixture.DocumentAsync();
        var train = doc["paths"]!.AsObject().First(p => p.Key.TrimEnd('/') == "/train").Value!["post"]!;
        var json = train["requestBody"]!["content"]!["application/json"]!;
        Assert.EndsWith("TrainRequest", (string?)(json["schema"]!["$ref"] ?? json["schema"]!["allOf"]![0]!["$ref"]), StringComparison.Ordinal);
        Assert.Equal("fashion-mnist", (string?)json["example"]!["dataset"]);
        Assert.EndsWith("HttpValidationProblemDetails", (string?)train["responses"]!["400"]!["content"]!.AsObject().First().Value!["schema"]!["$ref"], StringComparison.Ordinal);
        Assert.EndsWith("TrainAccepted", (string?)train["responses"]!["202"]!["content"]!["application/json"]!["schema"]!["$ref"], StringComparison.Ordinal);

        // XML docs of the request fields reach the schema.
        var epochs = doc["components"]!["schemas"]!["TrainRequest"]!["properties"]!["epochs"]!;
        Assert.Contains("Passes over the training set", (string?)epochs["description"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_job_list_documents_the_runs_table_and_its_format_parameter()
    {
        var doc = await fixture.DocumentAsync();
        var list = doc["paths"]!.AsObject().First(p => p.Key.TrimEnd('/') == "/train").Value!["get"]!;
        var format = list["parameters"]!.AsArray().Single(p => (string?)p!["name"] == "format")!;
        Assert.Equal("query", (string?)format["in"]);
        Assert.Equal(["json", "csv"], format["schema"]!["enum"]!.AsArray().Select(v => (string?)v));
        Assert.False(string.IsNullOrEmpty((string?)format["description"]));

        var ok = list["responses"]!["200"]!["content"]!.AsObject();
        Assert.Equal("array", (string?)ok["application/json"]!["schema"]!["type"]);
        var csv = ok["text/csv"]!;
        Assert.Equal("string", (string?)csv["schema"]!["type"]);
        var example = (string?)csv["example"] ?? "";
        Assert.StartsWith("job_id,status,model_name,model_version,", example, StringComparison.Ordinal);
        var lines = example.Split("\r\n");
        Assert.Equal(3, lines.Length); // header, one run, and the CRLF that ends it
        Assert.Equal(lines[0].Split(',').Length, lines[1].Split(',').Length);
        Assert.Contains("400", list["responses"]!.AsObject().Select(r => r.Key));
        Assert.Contains("text/csv", (string?)list["description"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_description_documents_the_training_hub()
    {
        var doc = await fixture.DocumentAsync();
        var description = (string?)doc["info"]!["description"] ?? "";
        foreach (var word in new[] { "/hubs/training", "Subscribe", "Unsubscribe", "SubscribeAll", "JobUpdated", "BatchProgress", "EpochCompleted", "JobFinished", "examplesPerSecond" })
        {
            Assert.Contains(word, description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Swagger_ui_is_served_without_a_cdn()
    {
        using var client = fixture.Factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/swagger/index.html", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("swagger-ui", html, StringComparison.Ordinal);
        Assert.DoesNotContain("//cdn", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("unpkg", html, StringComparison.OrdinalIgnoreCase);
        using var bundle = await client.GetAsync(new Uri("/swagger/swagger-ui-bundle.js", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, bundle.StatusCode);
    }
}
