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
        var seconds = args.Double("seconds", 5);
        var device = args.Get("device", "cpu");
        var info = TorchRuntime.Initialize(new TorchOptions { Device = device });
        var home = Directory.CreateTempSubdirectory("nin-bench-").FullName;
        try
        {
            // A NiN at the asked size in a fresh store (weights don't change speed).
            var store = new ModelStore(Path.Combine(home, "models"));
            manual_seed(0);
            using (var net = new NinNetwork(1, 10))
            {
                store.Add(net, new ModelMetadata { Name = "bench", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = imageSize, Preprocessing = new PreprocessingInfo() }, activate: true);
            }

            var png = SamplePng(args);
            Console.WriteLine($"predict bench: {imageSize} px NiN, device {info.Device}, {info.Threads} threads, TorchSharp {info.TorchSharpVersion}, {Environment.ProcessorCount} cores");

            // 1. Raw network: preprocessing + forward + softmax, as the engine runs it.
            var (single, batched) = RawForward(store, imageSize, args.Int("batch", 16), TorchRuntime.ResolveDevice(device));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw forward, 1 image:       {single:F2} ms"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw forward, batch {args.Int("batch", 16),2}:     {batched:F2} ms/image ({1000 / batched:F1} images/s)"));

            // 2. The real service on loopback.
            var port = args.Int("port", 5123);
            using var server = StartService(args, home, port, device);
            using var stopServer = new StopOnDispose(server);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
            await WaitUntilReadyAsync(http, server);

            for (var i = 0; i < 10; i++)
            {
                await PredictAsync(http, png);
            }

            var latencies = new List<double>();
            var latencyWatch = Stopwatch.StartNew();
            while (latencyWatch.Elapsed.TotalSeconds < seconds || latencies.Count < 20)
            {
                var t = Stopwatch.GetTimestamp();
                await PredictAsync(http, png);
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }

            latencies.Sort();
            var p50 = latencies[latencies.Count / 2];
            var p99 = latencies[Math.Min(latencies.Count - 1, (int)(latencies.Count * 0.99))];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HTTP /predict, 1 client:     p50 {p50:F2} ms, p99 {p99:F2} ms ({latencies.Count} requests); p50 / raw single = {p50 / single:F2}x"));

            double? oneClient = null;
            foreach (var clients in new[] { 1, 4, 16, 64 })
            {
                var rate = await ThroughputAsync(http, png, clients, seconds);
                oneClient ??= rate;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"HTTP /predict, {clients,2} clients:   {rate,8:F1} images/s; x{rate / oneClient.Value:F2} of 1 client, x{rate / (1000 / single):F2} of raw single, x{rate / (1000 / batched):F2} of raw batched"));
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

    private sealed class StopOnDispose(Process process) : IDisposable
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

    private static byte[] SamplePng(Args args)
    {
        var data = BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), BuiltInDatasets.FashionMnist, 1, 1);
        using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(data.Test.Pixels, 0, bitmap.GetPixels(), 784);
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }

    private static (double SingleMs, double BatchedMsPerImage) RawForward(ModelStore store, int imageSize, int batch, Device device)
    {
        var (network, _) = Checkpoint.Load(store.Find("bench", 1)!.Directory, device);
        using (network)
        {
            double Time(int n, int iterations)
            {
                using var inference = inference_mode();
                var bytes = new byte[n * 784];
                var watch = new Stopwatch();
                for (var i = -10; i < iterations; i++)
                {
                    using var scope = NewDisposeScope();
                    if (i == 0)
                    {
                        watch.Start();
                    }

                    var x = Preprocess.ToNetworkInput(tensor(bytes, [n, 1, 28, 28], ScalarType.Byte).to(device), imageSize);
                    _ = nn.functional.softmax(network.forward(x), 1).cpu().data<float>().ToArray();
                }

                return watch.Elapsed.TotalMilliseconds / iterations / n;
            }

            // Batched first, so both figures are measured after the same warm-up of libtorch's kernels.
            var batched = Time(batch, 10);
            return (Time(1, 50), batched);
        }
    }

    private static Process StartService(Args args, string home, int port, string device)
    {
        var api = args.Get("api") ?? FindApi();
        // The benchmark measures throughput: the per-client rate limit would cap it.
        var start = new ProcessStartInfo("dotnet", [api, "--urls", $"http://127.0.0.1:{port}", "--RateLimiting:Enabled=false"])
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
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Nin.sln")))
        {
            dir = dir.Parent;
        }

        var config = AppContext.BaseDirectory.Contains("/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";
        var path = dir is null ? null : Path.Combine(dir.FullName, "src", "Nin.Api", "bin", config, "net10.0", "Nin.Api.dll");
        return path is not null && File.Exists(path) ? path : throw new FileNotFoundException("Nin.Api.dll not found; build it (./nin bench builds it) or pass --api PATH.");
    }

    private static async Task WaitUntilReadyAsync(HttpClient http, Process server)
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

    private static async Task PredictAsync(HttpClient http, byte[] png)
    {
        using var content = new ByteArrayContent(png);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var response = await http.PostAsync(new Uri("/predict?topK=1", UriKind.Relative), content);
        response.EnsureSuccessStatusCode();
        await response.Content.ReadAsByteArrayAsync();
    }

    private static async Task<double> ThroughputAsync(HttpClient http, byte[] png, int clients, double seconds)
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
        return count / watch.Elapsed.TotalSeconds;
    }
}
