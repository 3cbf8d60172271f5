using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Nin.Api.Security;
using Nin.Model.Checkpoints;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>A keyed service with an untrained 67 px model and its own data folder, for the hostile corpus.</summary>
public sealed class HostileFixture : IDisposable
{
    public const string Key = "hostile-key-0123";

    public HostileFixture()
    {
        var home = Directory.CreateTempSubdirectory("nin-hostile-").FullName;
        Home = home;
        DataDirectory = Path.Combine(home, "data");
        Directory.CreateDirectory(DataDirectory);
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        Factory = new NinApiFactory(new Dictionary<string, string?>
        {
            ["Nin:SeedDefaultModel"] = "false",
            ["Nin:DataDirectory"] = DataDirectory,
            ["Security:ApiKeys:0"] = Key,
            ["Serving:MaxImageBytes"] = "200000",
            ["Serving:MaxImagesPerRequest"] = "8",
            ["Serving:MaxRequestBytes"] = "1000000",
            ["Serving:MaxImagePixels"] = "4000000",
        }, home);
    }

    public string Home { get; }

    public string DataDirectory { get; }

    public NinApiFactory Factory { get; }

    public void Dispose()
    {
        Factory.Dispose();
        try
        {
            Directory.Delete(Home, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// Hostile inputs: each gets its status code as ProblemDetails (no stack traces, no server paths), leaves nothing
/// behind, and a good request still succeeds afterwards.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class HostileInputTests(HostileFixture fixture) : IClassFixture<HostileFixture>
{
    private const string NoKey = "";

    public static TheoryData<string, int> Cases => new()
    {
        // zips to POST /datasets
        { "zip-slip", 400 },
        { "zip-slip-nested", 400 },
        { "zip-absolute-path", 400 },
        { "zip-drive-letter", 400 },
        { "zip-backslash", 400 },
        { "zip-symlink", 400 },
        { "zip-ratio-bomb", 413 },
        { "zip-huge-entry", 413 },
        { "zip-huge-declared-size", 413 },
        { "zip-lying-size", 400 },
        { "zip-100000-entries", 413 },
        { "zip-single-class", 400 },
        { "zip-non-images", 400 },
        { "zip-empty-class", 400 },
        { "zip-empty", 400 },
        { "not-a-zip", 400 },
        { "truncated-zip", 400 },
        { "upload-without-file", 400 },
        { "upload-as-json", 415 },
        { "upload-bad-size", 400 },
        { "upload-long-name", 400 },
        { "upload-without-key", 401 },
        { "upload-wrong-key", 403 },

        // images to POST /predict
        { "gif-5000-frames", 200 },
        { "png-1-pixel", 200 },
        { "png-16-bit", 200 },
        { "jpeg-cmyk", 200 },

        // images whose work used to grow with the input's longest side squared, or overflowed (500)
        { "png-30000x1", 400 },
        { "png-1x30000", 400 },
        { "png-11314x100", 400 },
        { "png-4000x200", 200 },
        { "png-200x4000", 200 },
        { "png-over-pixel-limit", 413 },
        { "zip-30000x1-image", 400 },
        { "zip-11314x100-image", 400 },

        // KServe v2 bodies
        { "kserve-null-input", 400 },
        { "kserve-null-shape", 400 },
        { "kserve-null-datatype", 400 },
        { "kserve-null-data", 400 },
        { "kserve-huge-values", 400 },
        { "kserve-huge-values-alternating", 400 },
        { "kserve-bytes-30000x1", 400 },
        { "kserve-not-json", 400 },
        { "kserve-wrong-types", 400 },

        // JSON to POST /train
        { "json-deeply-nested", 400 },
        { "json-malformed", 400 },
        { "json-wrong-types", 400 },
        { "json-huge-string", 400 },
        { "json-dataset-path", 400 },
        { "json-unknown-upload", 400 },
        { "train-without-key", 401 },
        { "train-bearer-wrong-key", 403 },
        { "hub-without-key", 401 },

        // unknown ids
        { "get-unknown-upload", 404 },
        { "delete-unknown-upload", 404 },
        { "get-dataset-traversal", 404 },
        { "delete-builtin-dataset", 409 },
        { "get-unknown-job", 404 },
        { "cancel-unknown-job", 404 },
        { "get-unknown-model", 404 },
        { "activate-unknown-model", 404 },
        { "delete-unknown-model", 404 },
        { "predict-unknown-model", 401 },
        { "predict-unknown-model-with-key", 404 },
        { "kserve-unknown-model", 404 },
        { "unknown-route", 404 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_hostile_request_gets_its_status_and_the_service_keeps_working(string kind, int status)
    {
        var (method, path, content, key) = Build(kind);
        using var client = fixture.Factory.CreateClient();
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        if (key.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key["Bearer ".Length..]);
        }
        else if (key.Length > 0)
        {
            request.Headers.Add(ApiKeyMiddleware.HeaderName, key);
        }

        using (var response = await client.SendAsync(request))
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(status == (int)response.StatusCode, $"{kind}: {(int)response.StatusCode} {body}");
            if (status >= 400)
            {
                if (!kind.StartsWith("kserve", StringComparison.Ordinal))
                {
                    Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                }

                Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
                Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
                Assert.DoesNotContain("System.", body, StringComparison.Ordinal);
                Assert.DoesNotContain(fixture.Home, body, StringComparison.Ordinal);
                Assert.DoesNotContain("/tmp/", body, StringComparison.Ordinal);
            }
        }

        // Nothing half-written is left in the uploads folder.
        var uploads = Path.Combine(fixture.DataDirectory, "uploads");
        if (Directory.Exists(uploads))
        {
            Assert.Empty(Directory.GetDirectories(uploads));
        }

        Assert.Empty(Directory.GetFiles(fixture.DataDirectory));
        Assert.False(File.Exists(Path.Combine(fixture.Home, "evil.png")));

        // A good request still works.
        using var good = PredictApiTests.Form(PredictApiTests.Png(0));
        using var ok = await client.PostAsync(new Uri("/predict", UriKind.Relative), good);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var list = await client.GetAsync(new Uri("/datasets", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
    }

    private static (HttpMethod Method, string Path, HttpContent? Content, string Key) Build(string kind)
    {
        var k = HostileFixture.Key;
        var png = TestImages.FashionImage(0);
        (HttpMethod, string, HttpContent?, string) Upload(byte[] zip, string key = HostileFixture.Key, params (string, string)[] fields) =>
            (HttpMethod.Post, "/datasets", TestZips.Form(zip, "hostile", "h.zip", fields), key);
        (HttpMethod, string, HttpContent?, string) Predict(string name, byte[] image, string type) =>
            (HttpMethod.Post, "/predict", PredictApiTests.Form(("images", name, image, type)), NoKey);
        (HttpMethod, string, HttpContent?, string) Train(string json, string key = HostileFixture.Key) =>
            (HttpMethod.Post, "/train", new StringContent(json, Encoding.UTF8, "application/json"), key);
        (HttpMethod, string, HttpContent?, string) Infer(string json) =>
            (HttpMethod.Post, "/v2/models/alpha/infer", new StringContent(json, Encoding.UTF8, "application/json"), NoKey);
        byte[] TwoClassesWith(string path, byte[] data) => TestZips.Build([("a/1.png", png), ("b/1.png", png), (path, data)]);

        return kind switch
        {
            "zip-slip" => Upload(TwoClassesWith("../evil.png", png)),
            "zip-slip-nested" => Upload(TwoClassesWith("a/../../evil.png", png)),
            "zip-absolute-path" => Upload(TwoClassesWith("/srv/evil.png", png)),
            "zip-drive-letter" => Upload(TwoClassesWith("C:/evil.png", png)),
            "zip-backslash" => Upload(TwoClassesWith("a\\..\\..\\evil.png", png)),
            "zip-symlink" => Upload(Symlink()),
            "zip-ratio-bomb" => Upload(TestZips.Build([("a/1.png", png), ("b/1.png", new byte[8 * 1024 * 1024])], CompressionLevel.SmallestSize)),
            "zip-huge-entry" => Upload(TestZips.Build([("a/1.png", png), ("b/1.png", new byte[25 * 1024 * 1024])], CompressionLevel.SmallestSize)),
            "zip-huge-declared-size" => Upload(PatchSizes(TestZips.Build([("a/1.png", png), ("b/1.png", png)], CompressionLevel.NoCompression), "b/1.png", 0x7FFF_FFF0)),
            "zip-lying-size" => Upload(PatchSizes(TestZips.Build([("a/1.png", png), ("b/1.png", png)], CompressionLevel.Optimal), "b/1.png", 10)),
            "zip-100000-entries" => Upload(TestZips.Build(Enumerable.Range(0, 100_000).Select(i => ($"c{i % 3}/{i}.txt", Array.Empty<byte>())))),
            "zip-single-class" => Upload(TestZips.Build(Enumerable.Range(0, 5).Select(i => ($"only/{i}.png", TestImages.FashionImage(i))))),
            "zip-non-images" => Upload(TestZips.Build([("a/1.txt", "text"u8.ToArray()), ("b/1.pdf", "%PDF-1.4"u8.ToArray()), ("b/2.png", "<html>"u8.ToArray())])),
            "zip-empty-class" => Upload(TestZips.Build([("a/1.png", png), ("b/1.png", png), ("c/", [])])),
            "zip-empty" => Upload(TestZips.Build([])),
            "not-a-zip" => Upload("this is not a zip at all"u8.ToArray()),
            "truncated-zip" => Upload(TestImages.Truncated(TestZips.Build([("a/1.png", png), ("b/1.png", png)]))),
            "upload-without-file" => (HttpMethod.Post, "/datasets", new MultipartFormDataContent { { new StringContent("x"), "name" } }, k),
            "upload-as-json" => (HttpMethod.Post, "/datasets", new StringContent("{}", Encoding.UTF8, "application/json"), k),
            "upload-bad-size" => Upload(TwoClassesWith("a/2.png", png), k, ("size", "100000")),
            "upload-long-name" => (HttpMethod.Post, "/datasets", TestZips.Form(TwoClassesWith("a/2.png", png), new string('n', 500)), k),
            "upload-without-key" => Upload(TwoClassesWith("a/2.png", png), NoKey),
            "upload-wrong-key" => Upload(TwoClassesWith("a/2.png", png), "not-the-key"),

            "gif-5000-frames" => Predict("many.gif", ManyFrameGif(5000), "image/gif"),
            "png-1-pixel" => Predict("dot.png", OnePixelPng(), "image/png"),
            "png-16-bit" => Predict("deep.png", SixteenBitPng(), "image/png"),
            "jpeg-cmyk" => Predict("cmyk.jpg", CmykJpeg(), "image/jpeg"),

            "png-30000x1" => Predict("line.png", SolidPng(30000, 1), "image/png"),
            "png-1x30000" => Predict("column.png", SolidPng(1, 30000), "image/png"),
            "png-11314x100" => Predict("strip.png", SolidPng(11314, 100), "image/png"),
            "png-4000x200" => Predict("wide.png", SolidPng(4000, 200), "image/png"),
            "png-200x4000" => Predict("tall.png", SolidPng(200, 4000), "image/png"),
            "png-over-pixel-limit" => Predict("big.png", SolidPng(2001, 2000), "image/png"),
            "zip-30000x1-image" => Upload(TestZips.Build([("a/1.png", png), ("b/1.png", SolidPng(30000, 1))])),
            "zip-11314x100-image" => Upload(TestZips.Build([("a/1.png", png), ("b/1.png", SolidPng(11314, 100))])),

            "kserve-null-input" => Infer("""{"inputs":[null]}"""),
            "kserve-null-shape" => Infer("""{"inputs":[{"name":"input","shape":null,"datatype":"FP32","data":[0]}]}"""),
            "kserve-null-datatype" => Infer("""{"inputs":[{"name":"input","shape":[1,1,67,67],"datatype":null,"data":[0]}]}"""),
            "kserve-null-data" => Infer("""{"inputs":[{"name":"input","shape":[1,1,67,67],"datatype":"FP32","data":null}]}"""),
            "kserve-huge-values-alternating" => Infer("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,67,67],\"datatype\":\"FP32\",\"data\":[" + string.Join(',', Enumerable.Range(0, 67 * 67).Select(i => i % 2 == 0 ? "3e38" : "-3e38")) + "]}]}"),
            "kserve-huge-values" => Infer("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,67,67],\"datatype\":\"FP32\",\"data\":[" + string.Join(',', Enumerable.Repeat("3e38", 67 * 67)) + "]}]}"),
            "kserve-bytes-30000x1" => Infer("{\"inputs\":[{\"name\":\"images\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"" + Convert.ToBase64String(SolidPng(30000, 1)) + "\"]}]}"),
            "kserve-not-json" => Infer("{\"inputs\": [ {"),
            "kserve-wrong-types" => Infer("""{"inputs":[{"name":"input","shape":"1,1,67,67","datatype":"FP32","data":[0]}]}"""),

            "json-deeply-nested" => Train(string.Concat(Enumerable.Repeat("{\"a\":", 5000)) + "1" + new string('}', 5000)),
            "json-malformed" => Train("{\"epochs\": 1,,}"),
            "json-wrong-types" => Train("{\"epochs\": \"ten\", \"batchSize\": [1]}"),
            "json-huge-string" => Train("{\"modelName\": \"" + new string('m', 2_000_000) + "\"}"),
            "json-dataset-path" => Train("{\"dataset\": \"../../../etc/passwd\"}"),
            "json-unknown-upload" => Train("{\"dataset\": \"u-0123456789abcdef\"}"),
            "train-without-key" => Train("{}", NoKey),
            "train-bearer-wrong-key" => Train("{}", "Bearer not-the-key"),
            "hub-without-key" => (HttpMethod.Post, "/hubs/training/negotiate?negotiateVersion=1", null, NoKey),

            "get-unknown-upload" => (HttpMethod.Get, "/datasets/u-0123456789abcdef", null, NoKey),
            "delete-unknown-upload" => (HttpMethod.Delete, "/datasets/u-0123456789abcdef", null, k),
            "get-dataset-traversal" => (HttpMethod.Get, "/datasets/..%2F..%2Fetc%2Fpasswd", null, NoKey),
            "delete-builtin-dataset" => (HttpMethod.Delete, "/datasets/mnist", null, k),
            "get-unknown-job" => (HttpMethod.Get, "/train/nope", null, k),
            "cancel-unknown-job" => (HttpMethod.Delete, "/train/nope", null, k),
            "get-unknown-model" => (HttpMethod.Get, "/models/nope/versions/1", null, NoKey),
            "activate-unknown-model" => (HttpMethod.Post, "/models/nope/versions/1/activate", null, k),
            "delete-unknown-model" => (HttpMethod.Delete, "/models/nope/versions/1", null, k),
            "predict-unknown-model" => (HttpMethod.Post, "/predict?model=nope", PredictApiTests.Form(PredictApiTests.Png(0)), NoKey),
            "predict-unknown-model-with-key" => (HttpMethod.Post, "/predict?model=nope", PredictApiTests.Form(PredictApiTests.Png(0)), k),
            "kserve-unknown-model" => (HttpMethod.Get, "/v2/models/nope", null, NoKey),
            "unknown-route" => (HttpMethod.Get, "/no/such/route", null, NoKey),
            _ => throw new ArgumentException(kind),
        };
    }

    /// <summary>Two good classes and an entry whose external attributes mark it a Unix symbolic link.</summary>
    private static byte[] Symlink()
    {
        using var memory = new MemoryStream();
        using (var zip = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var name in new[] { "a/1.png", "b/1.png" })
            {
                using var s = zip.CreateEntry(name).Open();
                s.Write(TestImages.FashionImage(0));
            }

            var link = zip.CreateEntry("a/link.png");
            link.ExternalAttributes = unchecked((int)(0xA1FFu << 16));
            using var l = link.Open();
            l.Write("/etc/passwd"u8);
        }

        return memory.ToArray();
    }

    /// <summary>Rewrites an entry's declared uncompressed size in its local and central headers.</summary>
    private static byte[] PatchSizes(byte[] zip, string entry, uint size)
    {
        var name = Encoding.UTF8.GetBytes(entry);
        for (var i = 0; i + 46 < zip.Length; i++)
        {
            var signature = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (signature == 0x04034b50 && zip.AsSpan(i + 30, name.Length).SequenceEqual(name))
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 22), size);
            }
            else if (signature == 0x02014b50 && zip.AsSpan(i + 46, name.Length).SequenceEqual(name))
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 24), size);
            }
        }

        return zip;
    }

    /// <summary>An animated GIF of <paramref name="frames"/> 1×1 frames.</summary>
    private static byte[] ManyFrameGif(int frames)
    {
        using var ms = new MemoryStream();
        ms.Write("GIF89a"u8);
        ms.Write([1, 0, 1, 0, 0x80, 0, 0]); // 1×1, global colour table of 2
        ms.Write([0, 0, 0, 255, 255, 255]);
        ms.Write([0x21, 0xFF, 0x0B, .. "NETSCAPE2.0"u8, 0x03, 0x01, 0x00, 0x00, 0x00]); // loop forever
        for (var i = 0; i < frames; i++)
        {
            ms.Write([0x21, 0xF9, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00]);
            ms.Write([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
            ms.Write([0x02, 0x02, 0x44, 0x01, 0x00]);
        }

        ms.WriteByte(0x3B);
        return ms.ToArray();
    }

    /// <summary>A w×h PNG of one grey: a few hundred bytes, whatever its size.</summary>
    internal static byte[] SolidPng(int width, int height)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        bitmap.Erase(SKColors.Gray);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static byte[] OnePixelPng()
    {
        using var bitmap = new SKBitmap(1, 1);
        bitmap.SetPixel(0, 0, SKColors.Gray);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>A 16-bit-per-channel RGB PNG (8×8 gradient).</summary>
    private static byte[] SixteenBitPng()
    {
        const int side = 8;
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, side);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), side);
        ihdr[8] = 16; // bit depth
        ihdr[9] = 2; // RGB
        var raw = new MemoryStream();
        for (var y = 0; y < side; y++)
        {
            raw.WriteByte(0);
            for (var x = 0; x < side; x++)
            {
                var v = (ushort)((x + y) * 4000);
                for (var c = 0; c < 3; c++)
                {
                    raw.WriteByte((byte)(v >> 8));
                    raw.WriteByte((byte)v);
                }
            }
        }

        var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
        {
            z.Write(raw.ToArray());
        }

        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(ms, "IHDR", ihdr);
        Chunk(ms, "IDAT", idat.ToArray());
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    /// <summary>
    /// A baseline 8×8 JPEG with four components (CMYK, Adobe APP14 transform 0): one block per component, DC 0 and
    /// no AC, with one-symbol Huffman tables.
    /// </summary>
    private static byte[] CmykJpeg()
    {
        using var ms = new MemoryStream();
        void Segment(byte marker, byte[] payload)
        {
            ms.Write([0xFF, marker, (byte)((payload.Length + 2) >> 8), (byte)(payload.Length + 2)]);
            ms.Write(payload);
        }

        ms.Write([0xFF, 0xD8]);
        Segment(0xEE, [.. "Adobe"u8, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);
        Segment(0xDB, [0x00, .. Enumerable.Repeat((byte)1, 64)]);
        Segment(0xC0, [8, 0, 8, 0, 8, 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0]);
        var oneCode = new byte[16];
        oneCode[0] = 1;
        Segment(0xC4, [0x00, .. oneCode, 0x00]); // DC: category 0 only
        Segment(0xC4, [0x10, .. oneCode, 0x00]); // AC: end of block only
        Segment(0xDA, [4, 1, 0x00, 2, 0x00, 3, 0x00, 4, 0x00, 0, 63, 0]);
        ms.WriteByte(0x00); // 4 blocks × (DC "0" + EOB "0")
        ms.Write([0xFF, 0xD9]);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(word, TestImages.Crc32(typed));
        s.Write(word);
    }
}
