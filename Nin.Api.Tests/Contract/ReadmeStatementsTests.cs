using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Api.Tests.Api;

namespace Nin.Api.Tests.Contract;

/// <summary>The README's statements about status codes and KServe metadata that once were untrue, held to the server.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class ReadmeStatementsTests : IDisposable
{
    private readonly string emptyData = Directory.CreateTempSubdirectory("nin-no-data-").FullName;
    private readonly NinApiFactory factory;

    public ReadmeStatementsTests()
    {
        factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:DataDirectory"] = emptyData,
            ["Nin:DownloadDatasets"] = "false",
            ["Security:ApiKeys:0"] = "readme-key",
        });
    }

    [Fact]
    public async Task Evaluate_is_409_when_the_versions_dataset_is_not_here_and_cannot_be_downloaded()
    {
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "readme-key");
        using var response = await client.PostAsync(new Uri("/models/fashion-mnist/versions/1/evaluate", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("fashion-mnist", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_key_on_a_version_other_than_the_active_one_is_403_as_everywhere()
    {
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "not-a-key");
        using var form = PredictApiTests.Form(PredictApiTests.Png(0));
        using var response = await client.PostAsync(new Uri("/predict?model=fashion-mnist&version=2", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode); // a key was presented and is wrong: 403, as on /train
        using var none = factory.CreateClient();
        using var form2 = PredictApiTests.Form(PredictApiTests.Png(0));
        using var anonymous = await none.PostAsync(new Uri("/predict?model=fashion-mnist&version=2", UriKind.Relative), form2);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode); // no key: 401 with the challenge
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Fact]
    public async Task KServe_platform_names_the_serving_engine()
    {
        using var client = factory.CreateClient();
        var live = await client.GetFromJsonAsync<JsonElement>(new Uri("/health/live", UriKind.Relative));
        var metadata = await client.GetFromJsonAsync<JsonElement>(new Uri("/v2/models/fashion-mnist", UriKind.Relative));
        var engine = live.GetProperty("engine").GetString();
        Assert.Equal("onnxruntime", engine); // the default engine
        Assert.Equal("onnxruntime_onnx", metadata.GetProperty("platform").GetString());
    }

    public void Dispose()
    {
        factory.Dispose();
        try
        {
            Directory.Delete(emptyData, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
