using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Runtime;
using SkiaSharp;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>hostile</c>: the real service on loopback gets /predict requests of 64 images each, every image at the limits
/// (the most pixels an image may have, the longest and thinnest shape accepted, a JPEG, and a few bytes of PNG that
/// decode to 40 MP), and the service process's resident memory is sampled throughout: its peak next to its baseline
/// (measured after a warm-up with ordinary images in the same run).
/// </summary>
internal static class HostileCommand
{
    public static async Task<int> RunAsync(Args args)
    {
        var imageSize = args.Int("image-size", 96);
        var device = args.Get("device", "cpu");
        var rounds = Math.Max(1, args.Int("rounds", 3));
        var clientCounts = (args.Get("clients") ?? "1,4").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
        const long maxPixels = 40_000_000; // Serving:MaxImagePixels, the default
        var info = TorchRuntime.Initialize(new TorchOptions { Device = device });
        var home = Directory.CreateTempSubdirectory("nin-bench-hostile-").FullName;
        try
        {
            var store = new ModelStore(Path.Combine(home, "models"));
            manual_seed(0);
            using (var net = new NinNetwork(1, 10))
            {
                store.Add(net, new ModelMetadata { Name = "bench", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = imageSize, Preprocessing = new PreprocessingInfo() }, activate: true);
            }

            // 64 images at the limits: 20:1 both ways at 40 MP, a 40 MP square, a 40 MP JPEG.
            var wide = (W: 28_280, H: 1_414); // 39.99 MP, exactly 20:1
            var square = (int)Math.Sqrt(maxPixels);
            var kinds = new (string Name, byte[] Data, string Type)[]
            {
                ($"{wide.W}x{wide.H}.png", Solid(wide.W, wide.H, SKEncodedImageFormat.Png), "image/png"),
                ($"{wide.H}x{wide.W}.png", Solid(wide.H, wide.W, SKEncodedImageFormat.Png), "image/png"),
                ($"{square}x{square}.png", Solid(square, square, SKEncodedImageFormat.Png), "image/png"),
                ($"{square}x{square}.jpg", Solid(square, square, SKEncodedImageFormat.Jpeg), "image/jpeg"),
            };
            var images = Enumerable.Range(0, 64).Select(i => kinds[i % kinds.Length]).ToArray();
            Console.WriteLine($"hostile bench: {imageSize} px NiN, device {info.Device}, {Environment.ProcessorCount} cores; 64 images per request: " +
                string.Join(", ", kinds.Select(k => $"{k.Name} ({k.Data.Length / 1024.0:F0} KiB)")));

            var port = args.Int("port", 5124);
            using var server = PredictCommand.StartService(args, home, port, device, args.Get("engine", "auto"));
            using var stop = new PredictCommand.StopOnDispose(server);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(10) };
            await PredictCommand.WaitUntilReadyAsync(http, server);

            // Baseline: the service warmed up on ordinary 28×28 images (decoders, JIT, libtorch, the batcher).
            var small = Solid(28, 28, SKEncodedImageFormat.Png);
            for (var i = 0; i < 20; i++)
            {
                await PostAsync(http, Enumerable.Repeat(("small.png", small, "image/png"), 16).ToArray());
            }

            await Task.Delay(1000);
            var baseline = ProcessMemory.Rss(server.Id);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"baseline (after warm-up):      {baseline / 1048576.0,8:F0} MiB resident"));

            foreach (var clients in clientCounts)
            {
                using var sampler = new ProcessMemory.PeakSampler(server.Id);
                var statuses = new Dictionary<int, int>();
                var watch = Stopwatch.StartNew();
                for (var round = 0; round < rounds; round++)
                {
                    var codes = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => PostAsync(http, images)));
                    foreach (var code in codes)
                    {
                        statuses[code] = statuses.GetValueOrDefault(code) + 1;
                    }
                }

                var peak = sampler.Stop();
                var requests = rounds * clients;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{clients,2} client(s) x {rounds} rounds: peak {peak / 1048576.0,8:F0} MiB resident = baseline + {(peak - baseline) / 1048576.0:F0} MiB " +
                    $"({(double)peak / baseline:F2}x); {requests * 64} images in {watch.Elapsed.TotalSeconds:F1} s; answers {string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}"))}"));
            }

            // What the decoder's design bounds it to: one decoded source (RGBA, 4 B/pixel, plus mipmaps for the resize,
            // a third more) per concurrent big decode, at most one per core; everything after that is output-sized.
            var bound = Environment.ProcessorCount * maxPixels * 4 * 4 / 3;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"decode bound: {Environment.ProcessorCount} concurrent big decodes x 40 MP x 4 B x 4/3 = {bound / 1048576.0:F0} MiB above baseline (plus request bodies: 64 MiB each at most)"));
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(home, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static byte[] Solid(int width, int height, SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        bitmap.Erase(new SKColor(200, 200, 200));
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = SKColors.Black })
        {
            canvas.DrawRect(width / 4f, height / 4f, width / 2f, height / 2f, paint); // something to see, and to keep the codec honest
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 50);
        return data.ToArray();
    }

    private static int reported;

    private static async Task<int> PostAsync(HttpClient http, (string Name, byte[] Data, string Type)[] images)
    {
        using var form = new MultipartFormDataContent();
        foreach (var (name, data, type) in images)
        {
            var part = new ByteArrayContent(data);
            part.Headers.ContentType = new MediaTypeHeaderValue(type);
            form.Add(part, "images", name);
        }

        using var response = await http.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), form);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode && Interlocked.Exchange(ref reported, 1) == 0)
        {
            Console.WriteLine($"  first refusal: {(int)response.StatusCode} {body}");
        }

        return (int)response.StatusCode;
    }
}
