using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Nin.Api.Datasets;
using Nin.Api.Models;
using Nin.Api.Training;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>Zips built in memory for the upload tests.</summary>
internal static class TestZips
{
    public static byte[] Build(IEnumerable<(string Path, byte[] Data)> entries, CompressionLevel level = CompressionLevel.Fastest)
    {
        using var memory = new MemoryStream();
        using (var zip = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (path, data) in entries)
            {
                var entry = zip.CreateEntry(path, level);
                if (path.EndsWith('/'))
                {
                    continue;
                }

                using var stream = entry.Open();
                stream.Write(data);
            }
        }

        return memory.ToArray();
    }

    /// <summary>A small image of one colour with a lighter square in the middle.</summary>
    public static byte[] Colour(SKColor colour, int seed, SKEncodedImageFormat format = SKEncodedImageFormat.Png, int side = 20)
    {
        using var bitmap = new SKBitmap(side, side);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(colour);
            using var paint = new SKPaint { Color = SKColors.White };
            var o = 2 + (seed % 5);
            canvas.DrawRect(o, o, side / 2, side / 2, paint);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 95);
        return data.ToArray();
    }

    public static MultipartFormDataContent Form(byte[] zip, string? name = "my set", string fileName = "set.zip", params (string Key, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        var content = new ByteArrayContent(zip);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        form.Add(content, "file", fileName);
        if (name is not null)
        {
            form.Add(new StringContent(name), "name");
        }

        foreach (var (key, value) in fields)
        {
            form.Add(new StringContent(value), key);
        }

        return form;
    }

    /// <summary>Two colour classes of 12 images each inside a wrapping folder, plus two stray text files.</summary>
    public static byte[] TwoColourClasses()
    {
        var entries = new List<(string, byte[])>();
        for (var i = 0; i < 12; i++)
        {
            entries.Add(($"set/red/r{i}.png", Colour(new SKColor(200, 30, 30), i)));
            var jpeg = i % 2 == 0;
            entries.Add(($"set/blue/b{i}" + (jpeg ? ".jpg" : ".png"), Colour(new SKColor(30, 30, 200), i, jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png)));
        }

        entries.Add(("set/readme.txt", Encoding.UTF8.GetBytes("hello")));
        entries.Add(("set/red/notes.txt", Encoding.UTF8.GetBytes("not an image")));
        return Build(entries);
    }
}

/// <summary>A service with its own (empty) data folder, so uploads never touch the shared datasets.</summary>
public sealed class UploadFixture : IDisposable
{
    public UploadFixture()
    {
        DataDirectory = Directory.CreateTempSubdirectory("nin-upload-data-").FullName;
        Factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Nin:DataDirectory"] = DataDirectory,
        });
    }

    public string DataDirectory { get; }

    public string Uploads => Path.Combine(DataDirectory, "uploads");

    public NinApiFactory Factory { get; }

    public void Dispose()
    {
        Factory.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class DatasetUploadTests(UploadFixture fixture) : IClassFixture<UploadFixture>
{
    private static readonly Uri Datasets = new("/datasets", UriKind.Relative);

    private static readonly JsonSerializerOptions Json = TrainingApiTests.Json;

    [Fact]
    public async Task A_zip_of_class_folders_is_decoded_once_split_stored_listed_and_trainable_in_rgb()
    {
        using var client = fixture.Factory.CreateClient();
        using var form = TestZips.Form(TestZips.TwoColourClasses());
        using var response = await client.PostAsync(Datasets, form);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = (await response.Content.ReadFromJsonAsync<UploadedDataset>(Json))!;
        Assert.Equal($"/datasets/{dataset.Id}", response.Headers.Location!.OriginalString);
        Assert.Equal("my set", dataset.Name);
        Assert.Equal(["blue", "red"], dataset.Classes.Select(c => c.Name));
        Assert.All(dataset.Classes, c => Assert.Equal(12, c.Images));
        Assert.Equal(3, dataset.Channels);
        Assert.Equal(28, dataset.Size);
        Assert.Equal(4, dataset.Test); // 1 in 6 of each class
        Assert.Equal(20, dataset.Train);
        Assert.Equal(["set/readme.txt", "set/red/notes.txt"], dataset.Skipped.Select(s => s.Entry).Order(StringComparer.Ordinal));

        // Stored compactly, nothing left over.
        var dir = Path.Combine(fixture.Uploads, dataset.Id);
        Assert.Equal(20L * 3 * 28 * 28, new FileInfo(Path.Combine(dir, "train-images.bin")).Length);
        Assert.Equal(4, new FileInfo(Path.Combine(dir, "test-labels.bin")).Length);
        Assert.DoesNotContain(Directory.GetDirectories(fixture.Uploads), d => Path.GetFileName(d).StartsWith('.'));

        var list = await client.GetFromJsonAsync<DatasetInfo[]>(Datasets, Json);
        var listed = list!.Single(d => d.Name == dataset.Id);
        Assert.Equal("my set", listed.Title);
        Assert.Equal(3, listed.Channels);
        var one = await client.GetFromJsonAsync<UploadedDataset>(new Uri($"/datasets/{dataset.Id}", UriKind.Relative), Json);
        Assert.Equal(dataset.Train, one!.Train);

        // Train on it (RGB: a 3-channel NiN).
        using var train = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = dataset.Id, epochs = 1, batchSize = 8, imageSize = 67, maxTrainImages = 256, modelName = "colours", seed = 1,
        });
        Assert.Equal(HttpStatusCode.Accepted, train.StatusCode);
        var accepted = (await train.Content.ReadFromJsonAsync<TrainAccepted>(Json))!;
        var done = await TrainingApiTests.WaitForAsync(client, accepted.JobId, j => j.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, TimeSpan.FromMinutes(3));
        Assert.True(done.Status == JobStatus.Succeeded, JsonSerializer.Serialize(done, Json));
        var model = await client.GetFromJsonAsync<ModelVersionResponse>(new Uri("/models/colours/versions/1", UriKind.Relative), Json);
        Assert.Equal(3, model!.InputChannels);
        Assert.Equal(["blue", "red"], model.Classes);
        Assert.Equal(dataset.Id, model.Dataset);

        // An RGB model serves a colour image.
        using var predictForm = PredictApiTests.Form(("images", "red.png", TestZips.Colour(new SKColor(200, 30, 30), 1), "image/png"));
        using var predict = await client.PostAsync(new Uri("/predict?model=colours", UriKind.Relative), predictForm);
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);

        // In use by a queued or running job: 409; once it is cancelled, it can be deleted.
        using var longJob = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = dataset.Id, epochs = 500, batchSize = 4, imageSize = 67, modelName = "colours", seed = 1,
        });
        Assert.Equal(HttpStatusCode.Accepted, longJob.StatusCode);
        var longId = (await longJob.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
        using (var busy = await client.DeleteAsync(new Uri($"/datasets/{dataset.Id}", UriKind.Relative)))
        {
            await SecurityApiTests.AssertProblem(busy, HttpStatusCode.Conflict);
        }

        using (var cancel = await client.DeleteAsync(new Uri($"/train/{longId}", UriKind.Relative)))
        {
            Assert.True(cancel.IsSuccessStatusCode, cancel.StatusCode.ToString());
        }

        await TrainingApiTests.WaitForAsync(client, longId, j => j.Status is JobStatus.Cancelled or JobStatus.Failed or JobStatus.Succeeded, TimeSpan.FromMinutes(2));
        using (var deleted = await client.DeleteAsync(new Uri($"/datasets/{dataset.Id}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        Assert.False(Directory.Exists(dir));
        using var gone = await client.GetAsync(new Uri($"/datasets/{dataset.Id}", UriKind.Relative));
        await SecurityApiTests.AssertProblem(gone, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Train_and_test_folders_are_kept_as_given_and_grey_images_are_stored_grey_at_the_asked_size()
    {
        using var client = fixture.Factory.CreateClient();
        var entries = new List<(string, byte[])>();
        foreach (var (split, count) in new[] { ("train", 5), ("test", 2) })
        {
            for (var i = 0; i < count; i++)
            {
                entries.Add(($"{split}/shirt/{i}.png", TestImages.FashionImage(i)));
                entries.Add(($"{split}/shoe/{i}.bmp", TestZips.Colour(new SKColor(90, 90, 90), i, SKEncodedImageFormat.Png)));
            }
        }

        using var form = TestZips.Form(TestZips.Build(entries), "split", "split.zip", ("size", "32"));
        using var response = await client.PostAsync(Datasets, form);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var dataset = (await response.Content.ReadFromJsonAsync<UploadedDataset>(Json))!;
        Assert.Equal(1, dataset.Channels);
        Assert.Equal(32, dataset.Size);
        Assert.Equal(10, dataset.Train);
        Assert.Equal(4, dataset.Test);
        Assert.Empty(dataset.Skipped);
        Assert.Equal(10L * 32 * 32, new FileInfo(Path.Combine(fixture.Uploads, dataset.Id, "train-images.bin")).Length);
    }
}
