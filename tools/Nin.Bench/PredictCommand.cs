using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using SkiaSharp;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>predict</c>: raw forward time of the network next to the real service's /predict over HTTP on
/// loopback (one client's latency, and images/s at 1, 4, 16 and 64 concurrent clients), all in one run.
/// </summary>
internal static class PredictCommand
{
    public static async Task<int> RunAsync(Args args)
    {
        var imageSize = args.Int("image-size", 224);
        var seconds = args.Double("seconds", 10);
        var device = args.Get("device", "cpu");
        var info = TorchRuntime.Initialize(new TorchOptions { Device = device });
        var home = Directory.CreateTempSubdirectory("nin-bench-").FullName;
        try
        {
            // A NiN at the asked size in a fresh store (weights don't change speed).
            var store = new ModelStore(Path.Combine(home, "models"));
            manual_seed(0);
            using (var net = NetworkArchitectures.Get(args.Get("architecture", NetworkArchitectures.NinName)).Create(1, 10))
            {
                store.Add(net, new ModelMetadata { Name = "bench", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = imageSize, Preprocessing = new PreprocessingInfo() }, activate: true);
            }

            var (png, pixels) = SamplePng(args);
            Console.WriteLine($"predict bench: {imageSize} px NiN, device {info.Device}, {info.Threads} threads, TorchSharp {info.TorchSharpVersion}, {Environment.ProcessorCount} cores");

            // 1. The raw network in this process (preprocessing + forward + softmax, as the engine runs it, on the image
            //    the HTTP requests send), and 2. the real service on loopback.
            var batch = args.Int("batch", 16);
            using var raw = new RawNetwork(store, imageSize, TorchRuntime.ResolveDevice(device), pixels, batch);
            var port = args.Int("port", 5123);
            using var server = StartService(args, home, port, device);
            using var stopServer = new StopOnDispose(server);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
            await WaitUntilReadyAsync(http, server);

            // Warm-up: libtorch's kernels and the connection pool settle before anything is timed.
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed.TotalSeconds < args.Double("warmup", 3))
            {
                await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PredictAsync(http, png)));
            }

            // Every measure runs in each of several rounds, interleaved, so a shared machine's drift in speed falls on
            // all of them alike and the ratios compare like with like.
            var rounds = Math.Max(1, args.Int("rounds", 5));
            var slice = seconds / rounds;
            var clientCounts = (args.Get("clients") ?? "1,4,16,64").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
            var rawSingle = new List<double>();
            var rawBatched = new List<double>();
            var latencies = new List<double>();
            var parts = new Dictionary<string, List<double>>();
            var served = clientCounts.ToDictionary(c => c, _ => (Requests: 0L, Seconds: 0.0));
            var perRound = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                rawBatched.AddRange(raw.Time(batch, slice));
                rawSingle.AddRange(raw.Time(1, slice));
                var latencyWatch = Stopwatch.StartNew();
                while (latencyWatch.Elapsed.TotalSeconds < slice)
                {
                    var t = Stopwatch.GetTimestamp();
                    var timing = await PredictAsync(http, png);
                    latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                    foreach (var (name, ms) in ParseServerTiming(timing))
                    {
                        (parts.TryGetValue(name, out var list) ? list : parts[name] = []).Add(ms);
                    }
                }

                var rates = new Dictionary<int, double>();
                foreach (var clients in clientCounts)
                {
                    var (requests, elapsed) = await ThroughputAsync(http, png, clients, slice);
                    served[clients] = (served[clients].Requests + requests, served[clients].Seconds + elapsed);
                    rates[clients] = requests / elapsed;
                }

                if (rates.TryGetValue(1, out var one) && rates.TryGetValue(16, out var sixteen))
                {
                    perRound.Add(sixteen / one);
                }
            }

            var single = Median(rawSingle);
            var batched = Median(rawBatched);
            var p50 = Median(latencies);
            var p99 = latencies[Math.Min(latencies.Count - 1, (int)(latencies.Count * 0.99))];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{rounds} interleaved rounds of {slice:F1} s per measure"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw forward, 1 image:       {single:F2} ms (median of {rawSingle.Count})"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw forward, batch {batch,2}:     {batched:F2} ms/image ({1000 / batched:F1} images/s)"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HTTP /predict, 1 client:     p50 {p50:F2} ms, p99 {p99:F2} ms ({latencies.Count} requests); p50 / raw single = {p50 / single:F2}x"));
            if (parts.Count > 0)
            {
                // The service's own Server-Timing figures (medians): what is left of p50 is HTTP, routing and the client.
                Console.WriteLine("  inside the service (median ms): " + string.Join(", ", parts.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {Median(p.Value):F2}"))));
            }

            double? oneClient = null;
            foreach (var clients in clientCounts)
            {
                var rate = served[clients].Requests / served[clients].Seconds;
                oneClient ??= rate;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"HTTP /predict, {clients,2} clients:   {rate,8:F1} images/s; x{rate / oneClient.Value:F2} of {clientCounts[0]} client(s), x{rate / (1000 / single):F2} of raw single, x{rate / (1000 / batched):F2} of raw batched"));
            }

            if (perRound.Count > 0)
            {
                perRound.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"16 clients / 1 client, per round: {string.Join(" ", perRound.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))}"));
            }

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

    internal sealed class StopOnDispose(Process process) : IDisposable
    {
        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
        }
    }

    private static (byte[] Png, byte[] Pixels) SamplePng(Args args)
    {
        var data = BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), BuiltInDatasets.FashionMnist, 1, 1);
        using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(data.Test.Pixels, 0, bitmap.GetPixels(), 784);
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return (encoded.ToArray(), data.Test.Pixels[..784]);
    }

    /// <summary>The benchmark's own copy of the network, timed on this thread on copies of one image.</summary>
    private sealed class RawNetwork : IDisposable
    {
        private readonly ImageClassifier network;
        private readonly int imageSize;
        private readonly Device device;
        private readonly byte[] pixels;

        public RawNetwork(ModelStore store, int imageSize, Device device, byte[] pixels, int batch)
        {
            (network, _) = Checkpoint.Load(store.Find("bench", 1)!.Directory, device);
            this.imageSize = imageSize;
            this.device = device;
            this.pixels = pixels;
            Time(batch, 0.5);
            Time(1, 0.5);
        }

        /// <summary>Milliseconds per image of each pass of <paramref name="n"/> images, for about <paramref name="seconds"/>.</summary>
        public List<double> Time(int n, double seconds)
        {
            using var inference = inference_mode();
            var bytes = new byte[n * pixels.Length];
            for (var i = 0; i < n; i++)
            {
                pixels.CopyTo(bytes, i * pixels.Length);
            }

            var times = new List<double>();
            var total = Stopwatch.StartNew();
            while (times.Count < 3 || total.Elapsed.TotalSeconds < seconds)
            {
                using var scope = NewDisposeScope();
                var t = Stopwatch.GetTimestamp();
                var x = Preprocess.ToNetworkInput(tensor(bytes, [n, 1, 28, 28], ScalarType.Byte).to(device), imageSize);
                var probabilities = nn.functional.softmax(network.forward(x), 1).cpu().data<float>().ToArray();
                GC.KeepAlive(probabilities);
                times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds / n);
            }

            return times;
        }

        public void Dispose() => network.Dispose();
    }

    internal static Process StartService(Args args, string home, int port, string device)
    {
        var api = args.Get("api") ?? FindApi();
        // The benchmark measures throughput: the per-client rate limit would cap it.
        // --serve "Serving:Workers=1 Torch:Threads=2": settings for the service under test.
        var settings = (args.Get("serve") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => "--" + s);
        string[] serviceArgs = ["--urls", $"http://127.0.0.1:{port}", "--RateLimiting:Enabled=false", .. settings];
        // A self-contained service (a bundle) runs through its own executable; a build through dotnet.
        var apphost = Path.Combine(Path.GetDirectoryName(api)!, Path.GetFileNameWithoutExtension(api));
        var selfContained = File.Exists(Path.Combine(Path.GetDirectoryName(api)!, "libcoreclr.so")) && File.Exists(apphost);
        var start = new ProcessStartInfo(selfContained ? apphost : "dotnet", selfContained ? serviceArgs : [api, .. serviceArgs])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(api)!,
        };
        start.Environment["NIN_HOME"] = home;
        start.Environment["Nin__SeedDefaultModel"] = "false";
        start.Environment["Torch__Device"] = device;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("  service: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static string FindApi()
    {
        // A bundle (./nin bundle): the service sits beside the bench.
        var beside = Path.Combine(AppContext.BaseDirectory, "Nin.Api.dll");
        if (File.Exists(beside))
        {
            return beside;
        }

        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Nin.sln")))
        {
            dir = dir.Parent;
        }

        var config = AppContext.BaseDirectory.Contains("/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";
        var path = dir is null ? null : Path.Combine(dir.FullName, "Nin.Api", "bin", config, "net10.0", "Nin.Api.dll");
        return path is not null && File.Exists(path) ? path : throw new FileNotFoundException("Nin.Api.dll not found; build it (./nin bench builds it) or pass --api PATH.");
    }

    internal static async Task WaitUntilReadyAsync(HttpClient http, Process server)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"The service exited with code {server.ExitCode}.");
            }

            try
            {
                using var r = await http.GetAsync(new Uri("/v2/health/ready", UriKind.Relative));
                if (r.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(250);
        }

        throw new TimeoutException("The service did not become ready.");
    }

    private static async Task<string?> PredictAsync(HttpClient http, byte[] png)
    {
        using var content = new ByteArrayContent(png);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var response = await http.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), content);
        response.EnsureSuccessStatusCode();
        await response.Content.ReadAsByteArrayAsync();
        return response.Headers.TryGetValues("Server-Timing", out var values) ? string.Join(", ", values) : null;
    }

    /// <summary><c>name;dur=1.2;desc="..", other;dur=3</c> → (name, 1.2), (other, 3).</summary>
    private static IEnumerable<(string Name, double Ms)> ParseServerTiming(string? header)
    {
        foreach (var metric in (header ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = metric.Split(';', StringSplitOptions.TrimEntries);
            var dur = fields.FirstOrDefault(f => f.StartsWith("dur=", StringComparison.Ordinal));
            if (dur is not null && double.TryParse(dur.AsSpan(4), NumberStyles.Float, CultureInfo.InvariantCulture, out var ms))
            {
                yield return (fields[0], ms);
            }
        }
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static async Task<(long Requests, double Seconds)> ThroughputAsync(HttpClient http, byte[] png, int clients, double seconds)
    {
        var watch = Stopwatch.StartNew();
        var count = 0;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (watch.Elapsed.TotalSeconds < seconds)
            {
                await PredictAsync(http, png);
                Interlocked.Increment(ref count);
            }
        }));
        return (count, watch.Elapsed.TotalSeconds);
    }
}
