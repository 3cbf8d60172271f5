using System.Net;
using System.Net.Http.Json;
using Nin.Api.Models;
using Nin.Api.Serving;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>The shipped model, served on first start with nothing trained.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class DefaultModelTests
{
    private static async Task<(int Right, int Total)> ClassifyAsync(HttpClient client, IEnumerable<int> indices, SKEncodedImageFormat format)
    {
        int right = 0, total = 0;
        foreach (var chunk in indices.Chunk(64))
        {
            using var form = PredictApiTests.Form(chunk.Select(i => ("images", $"{i}", TestImages.FashionImage(i, format), format == SKEncodedImageFormat.Png ? "image/png" : "image/jpeg")).ToArray());
            using var response = await client.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadFromJsonAsync<PredictResponse>();
            foreach (var p in body!.Predictions)
            {
                right += p.Index == TestImages.FashionLabel(int.Parse(p.File!, System.Globalization.CultureInfo.InvariantCulture)) ? 1 : 0;
                total++;
            }
        }

        return (right, total);
    }

    [Fact]
    public async Task The_shipped_model_is_served_on_first_start_with_its_recorded_accuracy_from_png_and_jpeg()
    {
        using var factory = new NinApiFactory();
        using var client = factory.CreateClient();

        var models = await client.GetFromJsonAsync<ModelsResponse>(new Uri("/models", UriKind.Relative), TrainingApiTests.Json);
        Assert.Equal("fashion-mnist", models!.Active!.Name);
        var shipped = models.Models.Single(m => m.Name == "fashion-mnist").Versions.Single(v => v.Active);
        var recorded = shipped.TestAccuracy!.Value;
        Assert.Equal(10_000, shipped.Metadata.Recipe!.TestImages);

        // Lossless PNG of the whole test set: the same pixels the recorded accuracy was measured on.
        var (right, total) = await ClassifyAsync(client, Enumerable.Range(0, 10_000), SKEncodedImageFormat.Png);
        Assert.Equal(10_000, total);
        var png = (double)right / total;
        Assert.InRange(png, recorded - 0.01, recorded + 0.01);

        // JPEG (lossy) on a fifth of it, against PNG on the same images.
        var sample = Enumerable.Range(0, 2_000).Select(i => i * 5).ToArray();
        var (jpegRight, jpegTotal) = await ClassifyAsync(client, sample, SKEncodedImageFormat.Jpeg);
        var (pngRight, _) = await ClassifyAsync(client, sample, SKEncodedImageFormat.Png);
        var jpeg = (double)jpegRight / jpegTotal;
        Assert.InRange(jpeg, ((double)pngRight / jpegTotal) - 0.01, 1.0);
        Assert.InRange(jpeg, recorded - 0.01 - 0.02, 1.0); // a 2,000-image sample: allow its sampling error too
    }
}
