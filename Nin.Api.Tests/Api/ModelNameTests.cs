using System.Net;
using System.Net.Http.Json;
using System.Text;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>
/// The one model-name rule, at every door a name comes in by. A trailing newline passed a <c>$</c>-anchored pattern
/// ("nl\n" trained, was stored and activated, and then every /predict answered 500).
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ModelNameTests(ModelAccessFixture fixture) : IClassFixture<ModelAccessFixture>
{
    public static TheoryData<string> LineEnds => ["nl\n", "nl\r\n", "nl\r", "\nnl", "n\nl", "nl\u2028", "nl\u0085"];

    [Theory]
    [MemberData(nameof(LineEnds))]
    public void The_rule_refuses_line_ends_anywhere(string name)
    {
        Assert.False(ModelName.IsValid(name));
        Assert.False(ModelStore.IsValidName(name));
    }

    [Fact]
    public void The_store_refuses_to_save_under_a_name_with_a_line_end()
    {
        var store = new ModelStore(Directory.CreateTempSubdirectory("nin-names-").FullName);
        try
        {
            Assert.Throws<ArgumentException>(() => ServingFixture.AddRandom(store, "nl\n", seed: 1));
            Assert.Empty(Directory.EnumerateDirectories(store.Root));
        }
        finally
        {
            Directory.Delete(store.Root, recursive: true);
        }
    }

    [Fact]
    public async Task Every_entry_point_answers_400_for_a_name_with_a_trailing_newline()
    {
        using var client = SecurityApiTests.WithKey(fixture.Keyed, ModelAccessFixture.Key);
        const string name = "nl%0A";

        using (var train = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { modelName = "nl\n", epochs = 1, imageSize = 67, batchSize = 8, maxTrainImages = 8, maxTestImages = 8 }))
        {
            await SecurityApiTests.AssertProblem(train, HttpStatusCode.BadRequest);
        }

        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, $"/models/{name}/versions/1"),
            (HttpMethod.Post, $"/models/{name}/versions/1/activate"),
            (HttpMethod.Delete, $"/models/{name}/versions/1"),
            (HttpMethod.Get, $"/models/{name}/versions/1/export"),
            (HttpMethod.Get, $"/models/{name}/versions/1/evaluation"),
            (HttpMethod.Get, $"/models/{name}/versions/1/samples"),
            (HttpMethod.Post, $"/models/{name}/versions/1/evaluate"),
        })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(method, new Uri(path, UriKind.Relative)));
            await SecurityApiTests.AssertProblem(response, HttpStatusCode.BadRequest);
        }

        using (var import = await client.PostAsync(new Uri($"/models/{name}/versions", UriKind.Relative), new MultipartFormDataContent { { new StringContent("[\"a\",\"b\"]"), "classes" } }))
        {
            await SecurityApiTests.AssertProblem(import, HttpStatusCode.BadRequest);
        }

        using (var predict = await client.PostAsync(new Uri($"/predict?model={name}", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0))))
        {
            await SecurityApiTests.AssertProblem(predict, HttpStatusCode.BadRequest);
        }

        // KServe answers its own error body; what matters is a client error, never a 500.
        using (var infer = await client.PostAsync(new Uri($"/v2/models/{name}/infer", UriKind.Relative), new StringContent("{}", Encoding.UTF8, "application/json")))
        {
            Assert.True((int)infer.StatusCode is >= 400 and < 500, $"KServe infer: {infer.StatusCode}");
        }

        // Nothing was stored and the active version still serves.
        Assert.DoesNotContain(Directory.EnumerateDirectories(Path.Combine(fixture.Keyed.Home, "models")), d => Path.GetFileName(d).Contains('\n', StringComparison.Ordinal));
        using var ok = await client.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0)));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }
}
