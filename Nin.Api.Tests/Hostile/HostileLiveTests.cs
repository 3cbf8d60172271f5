using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Nin.Api.Tests.Api;
using Nin.Api.Tests.Cluster;
using Nin.Model.Checkpoints;
using Nin.Model.Interop;
using Nin.Model.Network;
using SkiaSharp;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Hostile;

/// <summary>The service as its own process, keyed, warmed up, with its resident memory measured after the warm-up.</summary>
public sealed class HostileServiceFixture : IAsyncLifetime
{
    public const string Key = "hostile-admin-key-0123456789";

    /// <summary>The body budget of this instance: one 250 MB upload fits, a second one does not.</summary>
    public const long BodyBudget = 300_000_000;

    private readonly string home = Directory.CreateTempSubdirectory("nin-hostile-").FullName;

    public NinProcess Service { get; private set; } = null!;

    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromMinutes(2) };

    public long Baseline { get; private set; }

    /// <summary>A d2l NiN (1 channel, 10 classes) as safetensors, every value finite.</summary>
    public static byte[] ValidSafetensors()
    {
        var tensors = TorchFiles.Parameters().Select(p =>
        {
            var floats = TorchFiles.Floats(TorchFiles.Elements(p.Shape));
            var values = new float[floats.Length / 4];
            Buffer.BlockCopy(floats, 0, values, 0, floats.Length);
            return new NamedTensor(p.Key, p.Shape, values);
        }).ToArray();
        using var buffer = new MemoryStream();
        Safetensors.Write(tensors, buffer);
        return buffer.ToArray();
    }

    public async Task InitializeAsync()
    {
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        ServingFixture.AddRandom(store, "alpha", seed: 2);
        store.Activate("alpha", 1);
        Service = NinProcess.Start(new Dictionary<string, string?>
        {
            ["Nin:Home"] = home,
            ["Nin:SeedDefaultModel"] = "false",
            ["Security:ApiKeys:0"] = Key,
            ["Security:MaxBufferedBodyBytes"] = BodyBudget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RateLimiting:Enabled"] = "false",
            ["Serving:ThreadsPerPass"] = "1",
        }, "hostile");
        await Service.WaitReadyAsync(timeout: TimeSpan.FromMinutes(3));
        Client.BaseAddress = Service.BaseAddress;
        Client.DefaultRequestHeaders.Add("X-Api-Key", Key);

        // Warm up every path the cases take (decoders, importers, exporters, the zip reader, JIT), then measure.
        using (var predict = await Client.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0))))
        {
            predict.EnsureSuccessStatusCode();
        }

        using (var import = await Client.PostAsync(new Uri("/models/warm/versions", UriKind.Relative), ModelTransferApiTests.ImportForm(ValidSafetensors(), "warm.safetensors", imageSize: 67)))
        {
            Assert.Equal(HttpStatusCode.Created, import.StatusCode);
        }

        using (var export = await Client.GetAsync(new Uri("/models/warm/versions/1/export?format=pytorch", UriKind.Relative)))
        {
            export.EnsureSuccessStatusCode();
            using var again = await Client.PostAsync(new Uri("/models/warm/versions", UriKind.Relative), ModelTransferApiTests.ImportForm(await export.Content.ReadAsByteArrayAsync(), "warm.pt", imageSize: 67));
            Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        }

        using (var upload = await Client.PostAsync(new Uri("/datasets", UriKind.Relative), TestZips.Form(TestZips.TwoColourClasses())))
        {
            Assert.Equal(HttpStatusCode.Created, upload.StatusCode);
        }

        await Task.Delay(1000);
        Baseline = LiveMemory.Rss(Service.Pid);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Service.DisposeAsync();
        Directory.Delete(home, recursive: true);
    }
}

/// <summary>
/// The hostile files and requests of the third security pass, against the live process: each answered with a 4xx
/// that says why (never native text, addresses or paths), the process's resident memory measured while it is handled
/// (peak over the post-warm-up baseline) and after, and the service still serving when they are done.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class HostileLiveTests(HostileServiceFixture fixture, ITestOutputHelper output) : IClassFixture<HostileServiceFixture>
{
    /// <summary>The most a refused hostile request may raise resident memory (the unfixed service took 367–489 MB).</summary>
    private const long MaxRise = 100L * 1024 * 1024;

    private async Task<(HttpStatusCode Status, string Body)> Measured(string what, Func<Task<HttpResponseMessage>> send, long maxRise = MaxRise)
    {
        var before = LiveMemory.Rss(fixture.Service.Pid);
        var watch = Stopwatch.StartNew();
        var ((status, body), peak) = await LiveMemory.PeakDuring(fixture.Service.Pid, async () =>
        {
            using var response = await send();
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        });
        output.WriteLine($"{what}: {(int)status} in {watch.ElapsedMilliseconds} ms; RSS baseline {LiveMemory.Mb(fixture.Baseline)}, before {LiveMemory.Mb(before)}, peak {LiveMemory.Mb(peak)} (+{LiveMemory.Mb(Math.Max(0, peak - Math.Max(before, fixture.Baseline)))})");
        Assert.True(peak - Math.Max(before, fixture.Baseline) < maxRise, $"{what}: resident memory rose to {LiveMemory.Mb(peak)} from {LiveMemory.Mb(before)} (baseline {LiveMemory.Mb(fixture.Baseline)})");
        Assert.False(fixture.Service.HasExited, $"{what}: the service exited\n{fixture.Service.Describe()}");
        return (status, body);
    }

    private Task<(HttpStatusCode Status, string Body)> Import(string what, byte[] file, string name) =>
        Measured(what, () => fixture.Client.PostAsync(new Uri("/models/hostile/versions", UriKind.Relative), ModelTransferApiTests.ImportForm(file, name, imageSize: 67)));

    private static string Detail(string body) => JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;

    private static void AssertClean(string detail)
    {
        foreach (var leak in new[] { "0x", "/tmp", "/work", "/var", "/usr", "libtorch", "c10::", "Exception", ".cpp", ".so" })
        {
            Assert.DoesNotContain(leak, detail, StringComparison.OrdinalIgnoreCase);
        }

        Assert.DoesNotMatch(new System.Text.RegularExpressions.Regex(@"\bat \S+\("), detail); // a stack frame
    }

    private async Task AssertStillServingAsync()
    {
        using var predict = await fixture.Client.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(1)));
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        var models = await fixture.Client.GetStringAsync(new Uri("/models", UriKind.Relative));
        Assert.DoesNotContain("\"hostile\"", models, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Weight_files_that_point_many_tensors_at_one_range_or_storage_are_refused_within_bounded_memory()
    {
        // safetensors, 4 MB: 100 entries all on one 4 MB range (the unfixed importer decoded it 100 times).
        const long range = 4L << 20;
        var aliased = TorchFiles.Safetensors(Enumerable.Range(0, 100).Select(i => ($"t{i}", "F32", new[] { range / 4 }, 0L, range)), range);
        var (status, body) = await Import("safetensors, 100 entries on one range", aliased, "aliased.safetensors");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertClean(Detail(body));

        // The right names and shapes, each range starting at 0.
        var largest = TorchFiles.Parameters().Max(p => TorchFiles.Elements(p.Shape)) * 4;
        var overlapping = TorchFiles.Safetensors(TorchFiles.Parameters().Select(p => (p.Key, "F32", p.Shape, 0L, TorchFiles.Elements(p.Shape) * 4)), largest);
        (status, body) = await Import("safetensors, the architecture's tensors on one range", overlapping, "overlap.safetensors");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("share bytes", Detail(body), StringComparison.Ordinal);

        // .pt, ~100 KB: every tensor a view of one deflated 256 MB storage (the unfixed reader inflated it per tensor and kept them).
        const long huge = 64L << 20;
        var shared = TorchFiles.StateDictPickle(TorchFiles.Parameters().Select(p => new PickledView(p.Key, "0", huge, 0, p.Shape, TorchFiles.Contiguous(p.Shape))));
        var pt = TorchFiles.Pt(shared, new Dictionary<string, byte[]> { ["0"] = new byte[huge * 4] }, deflateStorages: true);
        output.WriteLine($".pt with one shared storage: {pt.Length:N0} bytes");
        (status, body) = await Import(".pt, every tensor on one deflated 256 MB storage", pt, "shared.pt");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertClean(Detail(body));

        // 500 keys on one storage: refused by count before any storage is read.
        var many = TorchFiles.StateDictPickle(Enumerable.Range(0, 500).Select(i => new PickledView($"k{i}", "0", 1 << 20, 0, [1 << 20], [1])));
        (status, _) = await Import(".pt, 500 keys on one storage", TorchFiles.Pt(many, new Dictionary<string, byte[]> { ["0"] = new byte[4 << 20] }, deflateStorages: true), "many.pt");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task A_pt_with_an_out_of_bounds_offset_or_an_integer_key_is_a_clean_400()
    {
        var parameters = TorchFiles.Parameters();
        var storages = parameters.Select((p, i) => ($"{i}", TorchFiles.Floats(TorchFiles.Elements(p.Shape)))).ToDictionary(s => s.Item1, s => s.Item2);
        var outOfBounds = TorchFiles.StateDictPickle(parameters.Select((p, i) => new PickledView(p.Key, $"{i}", TorchFiles.Elements(p.Shape), i == 5 ? 1L << 50 : 0, p.Shape, TorchFiles.Contiguous(p.Shape))));
        var (status, body) = await Import(".pt, storage offset 2^50", TorchFiles.Pt(outOfBounds, storages), "oob.pt");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertClean(Detail(body));
        Assert.Contains("storage", Detail(body), StringComparison.Ordinal);

        var integerKey = TorchFiles.StateDictPickle(parameters.Select((p, i) => new PickledView(i == 0 ? 42L : p.Key, $"{i}", TorchFiles.Elements(p.Shape), 0, p.Shape, TorchFiles.Contiguous(p.Shape))));
        (status, body) = await Import(".pt, an integer key", TorchFiles.Pt(integerKey, storages), "int.pt");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("42", Detail(body), StringComparison.Ordinal);

        var call = TorchFiles.Pt(TorchFiles.CallPickle("os", "system", "touch /tmp/nin-hostile"), new Dictionary<string, byte[]>());
        (status, body) = await Import(".pt, a pickle that calls os.system", call, "call.pt");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("os.system", Detail(body), StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Dataset_zips_that_cost_more_than_their_bytes_are_refused_before_the_work()
    {
        // 200 entries on one 9 MP PNG (a few tens of KB): the unfixed service decoded it 200 times (6.7 s of CPU).
        byte[] png;
        using (var bitmap = new SKBitmap(3000, 3000))
        {
            bitmap.Erase(new SKColor(30, 60, 90));
            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            png = data.ToArray();
        }

        var zip = new RawZip().Add("a/0.png", png).Add("b/0.png", png);
        for (var i = 0; i < 200; i++)
        {
            zip.Alias($"{(i % 2 == 0 ? "a" : "b")}/copy{i}.png", i % 2);
        }

        var bytes = zip.Build();
        output.WriteLine($"aliased zip: {bytes.Length:N0} bytes");
        var watch = Stopwatch.StartNew();
        var (status, body) = await Measured("zip, 200 entries on one 9 MP PNG", () => fixture.Client.PostAsync(new Uri("/datasets", UriKind.Relative), TestZips.Form(bytes)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("overlap", Detail(body), StringComparison.Ordinal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{watch.Elapsed}");

        // 60,000 entries (the limit is 20,000): refused from the end record before the directory is parsed.
        var crowd = new RawZip();
        for (var i = 0; i < 60_000; i++)
        {
            crowd.Add($"a/{i}.png", [1], deflate: false);
        }

        (status, body) = await Measured("zip, 60,000 entries", () => fixture.Client.PostAsync(new Uri("/datasets", UriKind.Relative), TestZips.Form(crowd.Build())));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("60,000", Detail(body), StringComparison.Ordinal);

        // A path 2,000 folders deep.
        var deep = new RawZip().Add("a/0.png", png).Add(string.Concat(Enumerable.Repeat("d/", 2000)) + "x.png", [1], deflate: false).Build();
        (status, _) = await Measured("zip, a path 2,000 folders deep", () => fixture.Client.PostAsync(new Uri("/datasets", UriKind.Relative), TestZips.Form(deep)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Twelve_concurrent_exports_cost_one_build()
    {
        // The unfixed service reloaded and re-serialised the checkpoint per request: 12 at once cost +489 MB.
        var (_, peak) = await LiveMemory.PeakDuring(fixture.Service.Pid, async () =>
        {
            var formats = new[] { "pytorch", "safetensors", "onnx" };
            var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(async i =>
            {
                using var response = await fixture.Client.GetAsync(new Uri($"/models/alpha/versions/2/export?format={formats[i % 3]}", UriKind.Relative));
                return (response.StatusCode, (await response.Content.ReadAsByteArrayAsync()).Length);
            }));
            Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
            return answers;
        });
        output.WriteLine($"12 concurrent exports: RSS baseline {LiveMemory.Mb(fixture.Baseline)}, peak {LiveMemory.Mb(peak)}");
        Assert.True(peak - fixture.Baseline < 150L * 1024 * 1024, $"peak {LiveMemory.Mb(peak)} over baseline {LiveMemory.Mb(fixture.Baseline)}");

        // Anonymous: the active version only.
        using var anonymous = new HttpClient { BaseAddress = fixture.Service.BaseAddress };
        using var denied = await anonymous.GetAsync(new Uri("/models/alpha/versions/2/export", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task While_a_slow_upload_holds_the_body_budget_other_bodies_get_503_and_it_is_given_back()
    {
        // A client declares a 250 MB upload and trickles it: the budget (300 MB) holds it for as long as it takes.
        using var slow = new TcpClient();
        await slow.ConnectAsync(IPAddress.Loopback, fixture.Service.Port);
        var stream = slow.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /datasets HTTP/1.1\r\nHost: 127.0.0.1:{fixture.Service.Port}\r\nX-Api-Key: {HostileServiceFixture.Key}\r\n" +
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 250000000\r\n\r\n--b\r\n"));
        using var trickle = new CancellationTokenSource();
        var feeding = Task.Run(async () =>
        {
            while (!trickle.IsCancellationRequested)
            {
                await stream.WriteAsync(new byte[2048]);
                await Task.Delay(200);
            }
        });
        await Task.Delay(1000);

        // Another 100 MB upload, by its headers alone: no room.
        var status = await SendHeadersOnly(100_000_000);
        Assert.Equal(503, status.Code);
        Assert.Contains("Retry-After", status.Head, StringComparison.OrdinalIgnoreCase);

        // Requests without bodies are not affected.
        using (var models = await fixture.Client.GetAsync(new Uri("/models", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        }

        // The slow client leaves: its share comes back.
        await trickle.CancelAsync();
        await feeding.ContinueWith(_ => { }, TaskScheduler.Default);
        slow.Close();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        int after;
        do
        {
            await Task.Delay(250);
            after = (await SendHeadersOnly(100_000_000)).Code;
        }
        while (after == 503 && DateTime.UtcNow < deadline);
        Assert.NotEqual(503, after);
        await AssertStillServingAsync();
    }

    /// <summary>Sends a POST /datasets whose headers declare <paramref name="length"/> bytes, and reads the status line and headers of the answer.</summary>
    private async Task<(int Code, string Head)> SendHeadersOnly(long length)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, fixture.Service.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /datasets HTTP/1.1\r\nHost: 127.0.0.1:{fixture.Service.Port}\r\nX-Api-Key: {HostileServiceFixture.Key}\r\n" +
            $"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"));
        var buffer = new byte[8192];
        var head = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0)
            {
                break;
            }

            head.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        var text = head.ToString();
        var code = int.Parse(text.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        return (code, text);
    }
}
