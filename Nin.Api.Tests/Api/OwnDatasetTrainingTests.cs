using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nin.Api.Datasets;
using Nin.Api.Training;
using Nin.Model.Data;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>Pictures of the bench's synthetic shapes, encoded as RGB PNGs for uploads and /predict.</summary>
internal static class ShapePictures
{
    public static byte[] Png(byte[] planarRgb, int side)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var area = side * side;
        for (var y = 0; y < side; y++)
        {
            for (var x = 0; x < side; x++)
            {
                var i = (y * side) + x;
                bitmap.SetPixel(x, y, new SKColor(planarRgb[i], planarRgb[area + i], planarRgb[(2 * area) + i]));
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary><paramref name="perClass"/> pictures of each of the first <paramref name="classes"/> shapes, drawn from <paramref name="seed"/>.</summary>
    public static List<(string Class, byte[] Png)> Make(int classes, int perClass, int side, int seed)
    {
        var random = new Random(seed);
        var result = new List<(string, byte[])>();
        for (var i = 0; i < perClass; i++)
        {
            for (var c = 0; c < classes; c++)
            {
                result.Add((SyntheticShapes.AllClassNames[c], Png(SyntheticShapes.Draw(c, side, random), side)));
            }
        }

        return result;
    }

    public static byte[] Zip(IEnumerable<(string Class, byte[] Png)> pictures, string prefix = "") =>
        TestZips.Build(pictures.Select((p, i) => ($"{prefix}{p.Class}/{i:D4}.png", p.Png)));
}

/// <summary>Own datasets from upload to /predict: what is measured at upload, what a job trains with by default, and what it serves.</summary>
[Collection(TorchCollection.Name)]
public sealed class OwnDatasetTrainingTests(UploadFixture fixture) : IClassFixture<UploadFixture>
{
    private static readonly Uri Datasets = new("/datasets", UriKind.Relative);
    private static readonly JsonSerializerOptions Json = TrainingApiTests.Json;

    private async Task<UploadedDataset> UploadAsync(HttpClient client, byte[] zip, params (string, string)[] fields)
    {
        using var form = TestZips.Form(zip, "shapes", fields: fields);
        using var response = await client.PostAsync(Datasets, form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<UploadedDataset>(Json))!;
    }

    [Fact]
    public async Task A_model_trained_with_defaults_on_a_photo_like_upload_serves_held_out_pictures_at_its_recorded_accuracy()
    {
        using var client = fixture.Factory.CreateClient();
        var dataset = await UploadAsync(client, ShapePictures.Zip(ShapePictures.Make(classes: 3, perClass: 48, side: 32, seed: 11)), ("size", "32"));
        Assert.Equal(Foregrounds.DarkOnLight, dataset.Foreground);

        // Defaults only: the robust recipe at the smallest input for an uploaded set.
        using var train = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new { dataset = dataset.Id, modelName = "shapes", epochs = 12, seed = 1 });
        Assert.Equal(HttpStatusCode.Accepted, train.StatusCode);
        var accepted = (await train.Content.ReadFromJsonAsync<TrainAccepted>(Json))!;
        var done = await TrainingApiTests.WaitForAsync(client, accepted.JobId, j => j.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, TimeSpan.FromMinutes(5));
        Assert.True(done.Status == JobStatus.Succeeded, JsonSerializer.Serialize(done, Json));
        Assert.Equal(("robust", "nin-bn", "one-cycle", 67), (done.Request.Recipe, done.Request.Architecture, done.Request.Schedule, done.Request.ImageSize));
        Assert.Empty(done.Warnings!);

        var model = JsonNode.Parse(await client.GetStringAsync(new Uri("/models/shapes/versions/1", UriKind.Relative)))!;
        Assert.Equal("nin-bn", (string?)model["metadata"]?["architecture"] ?? (string?)model["architecture"]);
        var recorded = done.Epochs[^1].TestAccuracy;
        Assert.True(recorded >= 0.9, $"recorded test accuracy {recorded}");

        // Held-out pictures drawn like the training ones, sent through /predict with its defaults (invert=auto).
        var heldOut = ShapePictures.Make(classes: 3, perClass: 10, side: 32, seed: 99);
        var right = 0;
        var inverted = 0;
        foreach (var chunk in heldOut.Chunk(15))
        {
            using var form = new MultipartFormDataContent();
            for (var i = 0; i < chunk.Length; i++)
            {
                var content = new ByteArrayContent(chunk[i].Png);
                content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                form.Add(content, "images", $"{i}.png");
            }

            using var response = await client.PostAsync(new Uri("/predict?model=shapes", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var predictions = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["predictions"]!.AsArray();
            for (var i = 0; i < chunk.Length; i++)
            {
                right += (string?)predictions[i]!["label"] == chunk[i].Class ? 1 : 0;
                inverted += (bool)predictions[i]!["inverted"]! ? 1 : 0;
            }
        }

        Assert.Equal(0, inverted);
        var served = (double)right / heldOut.Count;
        Assert.True(served >= recorded - 0.1, $"served accuracy {served:F3} on held-out pictures, recorded {recorded:F3}");
    }

    [Fact]
    public async Task A_class_too_small_for_both_splits_is_split_so_each_side_has_it_and_a_single_picture_class_is_refused_by_name()
    {
        using var client = fixture.Factory.CreateClient();
        var pictures = ShapePictures.Make(classes: 3, perClass: 12, side: 16, seed: 5)
            .Where(p => p.Class != "triangle").Concat(ShapePictures.Make(3, 3, 16, 6).Where(p => p.Class == "triangle")).ToList();
        var dataset = await UploadAsync(client, ShapePictures.Zip(pictures), ("size", "16"));
        Assert.All(dataset.Classes, c => Assert.True(c.Train >= 1 && c.Test >= 1, $"{c.Name}: {c.Train} train, {c.Test} test"));
        Assert.Equal(3, dataset.Classes.Single(c => c.Name == "triangle").Images);
        Assert.Equal(dataset.Train + dataset.Test, pictures.Count);

        var lonely = ShapePictures.Make(2, 8, 16, 7).Concat(ShapePictures.Make(3, 1, 16, 8).Where(p => p.Class == "triangle"));
        using var form = TestZips.Form(ShapePictures.Zip(lonely), "lonely", fields: ("size", "16"));
        using var refused = await client.PostAsync(Datasets, form);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("triangle", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_zip_with_only_train_folders_is_split_so_every_class_is_tested()
    {
        using var client = fixture.Factory.CreateClient();
        var dataset = await UploadAsync(client, ShapePictures.Zip(ShapePictures.Make(3, 7, 16, 9), prefix: "train/"), ("size", "16"));
        Assert.Equal(21, dataset.Train + dataset.Test);
        Assert.All(dataset.Classes, c => Assert.True(c.Train >= 1 && c.Test >= 1, $"{c.Name}: {c.Train} train, {c.Test} test"));
    }
}
