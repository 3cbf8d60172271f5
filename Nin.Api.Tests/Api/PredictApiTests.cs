using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Serving;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>A service whose store holds two untrained 67 px models (fast), so the contract can be tested without training.</summary>
public sealed class ServingFixture : IDisposable
{
    public ServingFixture()
        : this(new Dictionary<string, string?>())
    {
    }

    /// <param name="overrides">Extra settings, e.g. to turn rate limiting off for a load test.</param>
    internal ServingFixture(IDictionary<string, string?> overrides)
    {
        var home = Directory.CreateTempSubdirectory("nin-serve-").FullName;
        this.home = home;
        var store = new ModelStore(Path.Combine(home, "models"));
        AddRandom(store, "alpha", seed: 1);
        AddRandom(store, "alpha", seed: 2);
        store.Activate("alpha", 1);
        Factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Serving:MaxImageBytes"] = "200000",
            ["Serving:MaxImagesPerRequest"] = "8",
            ["Serving:MaxRequestBytes"] = "1000000",
            ["Serving:MaxImagePixels"] = "4000000",
            // These tests load the serving path hard (ONNX Runtime answers in ~2 ms, so a second of six looping clients
            // is well over the default 600 requests per 10 s); the limits have tests of their own (SecurityApiTests).
            ["RateLimiting:Enabled"] = "false",
        }.Concat(overrides).GroupBy(k => k.Key).ToDictionary(g => g.Key, g => g.Last().Value), home);
    }

    private readonly string home;

    public NinApiFactory Factory { get; }

    public static void AddRandom(ModelStore store, string name, int seed)
    {
        TorchSharp.torch.manual_seed(seed);
        using var net = new NinNetwork(1, 10);
        store.Add(net, new ModelMetadata
        {
            Name = name,
            ClassNames = Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames,
            ImageSize = 67,
            Preprocessing = new PreprocessingInfo(),
        }, activate: false);
    }

    public void Dispose()
    {
        Factory.Dispose();
        try
        {
            Directory.Delete(home, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class PredictApiTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    private HttpClient Client => fixture.Factory.CreateClient();

    internal static MultipartFormDataContent Form(params (string Field, string FileName, byte[] Data, string Type)[] files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (field, fileName, data, type) in files)
        {
            var content = new ByteArrayContent(data);
            content.Headers.ContentType = new MediaTypeHeaderValue(type);
            form.Add(content, field, fileName);
        }

        return form;
    }

    internal static (string, string, byte[], string) Png(int index) => ("images", $"fm-{index}.png", TestImages.FashionImage(index), "image/png");

    [Fact]
    public async Task Several_images_get_one_prediction_each_in_order_with_topk_and_probabilities()
    {
        using var client = Client;
        using var form = Form(Png(0), Png(1), Png(2));
        using var response = await client.PostAsync(new Uri("/predict?topK=10", UriKind.Relative), form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<PredictResponse>();
        Assert.NotNull(body);
        Assert.Equal(new ModelRef("alpha", 1), body.Model);
        Assert.Equal("cpu", body.Device);
        Assert.True(body.ElapsedMs > 0);
        Assert.Equal(["fm-0.png", "fm-1.png", "fm-2.png"], body.Predictions.Select(p => p.File));
        Assert.All(body.Predictions, p =>
        {
            Assert.Equal(10, p.Top.Count);
            Assert.Equal(1.0, p.Top.Sum(t => t.Probability), 4);
            Assert.Equal(p.Top[0].Label, p.Label);
            Assert.Equal(p.Top.Max(t => t.Probability), p.Probability);
            Assert.Equal(Nin.Model.Data.BuiltInDatasets.FashionMnist.ClassNames[p.Index], p.Label);
            Assert.False(p.Inverted); // Fashion-MNIST items are already light on dark
        });

        using var form2 = Form(Png(0), ("image", "single.png", TestImages.FashionImage(3), "image/png"));
        using var top2 = await client.PostAsync(new Uri("/predict?topK=2", UriKind.Relative), form2);
        var body2 = await top2.Content.ReadFromJsonAsync<PredictResponse>();
        Assert.Equal(2, body2!.Predictions.Count);
        Assert.All(body2.Predictions, p => Assert.Equal(2, p.Top.Count));
        Assert.Equal(body.Predictions[0].Top.Take(2).Select(t => t.Index), body2.Predictions[0].Top.Select(t => t.Index));
    }

    [Fact]
    public async Task A_raw_image_body_works_and_model_version_can_be_chosen()
    {
        using var client = Client;
        using var content = new ByteArrayContent(TestImages.FashionImage(5, SKEncodedImageFormat.Jpeg));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        using var response = await client.PostAsync(new Uri("/predict?model=alpha&version=2&topK=1", UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<PredictResponse>();
        Assert.Equal(new ModelRef("alpha", 2), body!.Model);
        Assert.Null(Assert.Single(body.Predictions).File);

        // Where the time went: W3C Server-Timing with the forward pass and the batch it ran in.
        var timing = string.Join(", ", response.Headers.GetValues("Server-Timing"));
        foreach (var part in new[] { "read;dur=", "decode;dur=", "queue;dur=", "forward;dur=", "infer;dur=" })
        {
            Assert.Contains(part, timing, StringComparison.Ordinal);
        }

        Assert.Matches(@"forward;dur=\d+\.\d+;desc=""batch [1-9]\d*""", timing);
    }

    [Theory]
    [InlineData("application/octet-stream")]
    [InlineData(null)] // no Content-Type at all
    [InlineData("application/x-www-form-urlencoded")] // what curl --data-binary @photo.jpg sends by default
    public async Task A_raw_image_body_without_an_image_content_type_is_read_by_its_bytes(string? contentType)
    {
        using var client = Client;
        var jpeg = TestImages.FashionImage(5, SKEncodedImageFormat.Jpeg);
        using var typed = new ByteArrayContent(jpeg) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } };
        using var expected = await client.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), typed);
        using var content = new ByteArrayContent(jpeg);
        content.Headers.ContentType = contentType is null ? null : new MediaTypeHeaderValue(contentType);
        using var response = await client.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), content);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var answer = Assert.Single((await response.Content.ReadFromJsonAsync<PredictResponse>())!.Predictions);
        Assert.Equal(Assert.Single((await expected.Content.ReadFromJsonAsync<PredictResponse>())!.Predictions).Label, answer.Label);

        // Bytes that are no image are still refused by what they are, whatever the Content-Type claimed.
        using var text = new ByteArrayContent("not an image"u8.ToArray());
        text.Headers.ContentType = contentType is null ? null : new MediaTypeHeaderValue(contentType);
        using var refused = await client.PostAsync(new Uri("/predict", UriKind.Relative), text);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_dark_object_on_white_is_inverted_by_auto_and_not_when_told()
    {
        using var client = Client;
        var photo = TestImages.FashionTest.Pixels.AsSpan(0, 784).ToArray().Select(b => (byte)(255 - b)).ToArray();
        var png = TestImages.Encode(photo, 28, 28, SKEncodedImageFormat.Png);
        using var auto = Form(("images", "photo.png", png, "image/png"));
        var a = await (await client.PostAsync(new Uri("/predict", UriKind.Relative), auto)).Content.ReadFromJsonAsync<PredictResponse>();
        using var off = Form(("images", "photo.png", png, "image/png"));
        var b = await (await client.PostAsync(new Uri("/predict?invert=false", UriKind.Relative), off)).Content.ReadFromJsonAsync<PredictResponse>();
        using var original = Form(Png(0));
        var c = await (await client.PostAsync(new Uri("/predict", UriKind.Relative), original)).Content.ReadFromJsonAsync<PredictResponse>();

        Assert.True(a!.Predictions[0].Inverted);
        Assert.False(b!.Predictions[0].Inverted);
        // Inverting the inverted photo gives back the original item exactly.
        Assert.Equal(c!.Predictions[0].Top.Select(t => t.Probability), a.Predictions[0].Top.Select(t => t.Probability));
    }

    public static TheoryData<string, int> BadRequests => new()
    {
        { "text-as-png", 415 },
        { "html-as-png", 415 },
        { "pdf-as-png", 415 },
        { "empty-file", 415 },
        { "truncated-png", 400 },
        { "truncated-jpeg", 400 },
        { "huge-png-header", 413 },
        { "over-image-bytes", 413 },
        { "too-many-images", 413 },
        { "no-images-field", 400 },
        { "wrong-content-type", 415 },
        { "empty-raw-body", 400 },
        { "bad-topk", 400 },
        { "bad-invert", 400 },
        { "unknown-model", 404 },
        { "unknown-version", 404 },
        { "over-request-bytes", 413 },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_input_gets_its_status_and_problem_details_and_the_service_keeps_working(string kind, int status)
    {
        using var client = Client;
        var png = TestImages.FashionImage(0);
        var jpeg = TestImages.FashionImage(0, SKEncodedImageFormat.Jpeg);
        HttpContent content = kind switch
        {
            "text-as-png" => Form(("images", "a.png", "hello, world"u8.ToArray(), "image/png")),
            "html-as-png" => Form(("images", "a.png", "<html><body>hi</body></html>"u8.ToArray(), "image/png")),
            "pdf-as-png" => Form(("images", "a.png", "%PDF-1.4\n%âãÏÓ\n1 0 obj"u8.ToArray(), "image/png")),
            "empty-file" => Form(("images", "a.png", [], "image/png")),
            "truncated-png" => Form(("images", "a.png", TestImages.Truncated(png), "image/png")),
            "truncated-jpeg" => Form(("images", "a.jpg", TestImages.Truncated(jpeg, 0.3), "image/jpeg")),
            "huge-png-header" => Form(("images", "a.png", TestImages.PngHeaderOnly(60000, 60000), "image/png")),
            "over-image-bytes" => Form(("images", "a.png", new byte[200_001], "image/png")),
            "too-many-images" => Form(Enumerable.Range(0, 9).Select(Png).ToArray()),
            "no-images-field" => Form(("other", "a.png", png, "image/png")),
            "wrong-content-type" => new StringContent("just text"),
            "empty-raw-body" => new ByteArrayContent([]) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } },
            "over-request-bytes" => new ByteArrayContent(new byte[1_000_001]) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } },
            _ => Form(Png(0)),
        };
        var query = kind switch
        {
            "bad-topk" => "?topK=0",
            "bad-invert" => "?invert=maybe",
            "unknown-model" => "?model=nope",
            "unknown-version" => "?model=alpha&version=99",
            _ => "",
        };

        using (content)
        using (var response = await client.PostAsync(new Uri("/predict" + query, UriKind.Relative), content))
        {
            Assert.Equal(status, (int)response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
            Assert.Equal(status, problem!.Status);
            Assert.False(string.IsNullOrWhiteSpace(problem.Detail));
            Assert.DoesNotContain(" at Nin.", problem.Detail, StringComparison.Ordinal);
        }

        using var good = Form(Png(1));
        using var ok = await client.PostAsync(new Uri("/predict", UriKind.Relative), good);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Concurrent_requests_all_succeed_and_are_batched()
    {
        using var client = Client;
        var engine = fixture.Factory.Services.GetRequiredService<InferenceEngine>();
        var before = engine.Stats.LargestBatch;
        var images = Enumerable.Range(0, 32).Select(i => TestImages.FashionImage(i)).ToArray();

        var responses = await Task.WhenAll(images.Select(async (img, i) =>
        {
            using var form = Form(("images", $"{i}.png", img, "image/png"));
            using var r = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
            return (r.StatusCode, Body: await r.Content.ReadFromJsonAsync<PredictResponse>());
        }));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(Enumerable.Range(0, 32).Select(i => $"{i}.png"), responses.Select(r => r.Body!.Predictions[0].File));
        Assert.True(engine.Stats.LargestBatch > 1, $"no forward pass served more than one request (largest batch {engine.Stats.LargestBatch}, was {before})");
        Assert.True(engine.Stats.LargestBatch <= engine.MaxBatchSize, $"a pass of {engine.Stats.LargestBatch} exceeded the limit {engine.MaxBatchSize}");
    }

    [Fact]
    public async Task Activating_another_version_while_requests_are_in_flight_fails_none()
    {
        using var client = Client;
        var failures = new ConcurrentBag<string>();
        var versions = new ConcurrentBag<int>();
        using var stop = new CancellationTokenSource();
        var png = TestImages.FashionImage(7);

        var load = Enumerable.Range(0, 6).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var form = Form(("images", "x.png", png, "image/png"));
                using var r = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
                if (r.StatusCode != HttpStatusCode.OK)
                {
                    failures.Add($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                }
                else
                {
                    versions.Add((await r.Content.ReadFromJsonAsync<PredictResponse>())!.Model.Version);
                }
            }
        }).ToArray();

        for (var i = 0; i < 6; i++)
        {
            await Task.Delay(150);
            using var activate = await client.PostAsync(new Uri($"/models/alpha/versions/{(i % 2) + 1}/activate?force=true", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.OK, activate.StatusCode);
        }

        await Task.Delay(300);
        await stop.CancelAsync();
        await Task.WhenAll(load);
        using var restore = await client.PostAsync(new Uri("/models/alpha/versions/1/activate?force=true", UriKind.Relative), null);

        Assert.Empty(failures);
        Assert.Contains(1, versions);
        Assert.Contains(2, versions);
    }
}

[HostTests]
public sealed class PredictWithoutModelTests
{
    [Fact]
    public async Task No_model_is_503_saying_how_to_get_one()
    {
        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        using var form = PredictApiTests.Form(PredictApiTests.Png(0));
        using var response = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Contains("POST /train", problem!.Detail, StringComparison.Ordinal);
    }
}
