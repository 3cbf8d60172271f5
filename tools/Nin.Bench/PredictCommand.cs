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
/// <c>predict</c>: raw forward time of the network (TorchSharp and ONNX Runtime) next to the real service's /predict
/// over HTTP on loopback (one client's latency, and images/s at 1, 4, 16 and 64 concurrent clients), for each image
/// size, serving engine and precision asked (<c>--image-size 96,224 --engine torch,onnxruntime --precision fp32,int8</c>),
/// all interleaved in one run, with int8's ratios to fp32 (raw and HTTP) when both are asked; then the operator figures on
/// the first engine and size (<see cref="ServingLoad"/>): overload and hot swaps.
/// </summary>
internal static class PredictCommand
{
    public static async Task<int> RunAsync(Args args)
    {
        var sizes = args.Get("image-size", "224").Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var engines = args.Get("engine", "auto").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var precisions = Int8Bench.Precisions(args);
        var seconds = args.Double("seconds", 10);
        var device = args.Get("device", "cpu");
        var architecture = NetworkArchitectures.Get(args.Get("architecture", NetworkArchitectures.NinName));
        if (sizes.FirstOrDefault(s => s < architecture.MinInputSize || s > architecture.MaxInputSize) is var bad and not 0)
        {
            throw new ArgumentException($"--image-size {bad} is outside {architecture.Name}'s {architecture.MinInputSize}..{architecture.MaxInputSize} px.");
        }

        var overloadConnections = args.Int("overload-connections", ServingLoad.DefaultOverloadConnections);
        if (overloadConnections < 1)
        {
            throw new ArgumentException("--overload-connections must be at least 1.");
        }

        var info = TorchRuntime.Initialize(new TorchOptions { Device = device });
        var home = Directory.CreateTempSubdirectory("nin-bench-").FullName;
        var servers = new List<(string Engine, string Precision, Process Process, HttpClient Http)>();
        var raws = new List<IRawRunner>();
        try
        {
            // A NiN per asked size in a fresh store (weights don't change speed); one service per engine serves them all.
            var store = new ModelStore(Path.Combine(home, "models"));
            foreach (var size in sizes)
            {
                manual_seed(0);
                using var net = architecture.Create(1, 10);
                store.Add(net, new ModelMetadata { Name = ModelName(size), ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = size, Preprocessing = new PreprocessingInfo() }, activate: size == sizes[0]);
            }

            // Two more versions of the first size's model, for the swap figure (activations back and forth).
            var swaps = args.Int("swaps", 10);
            for (var seed = 1; swaps > 0 && seed <= 2; seed++)
            {
                manual_seed(seed);
                using var net = architecture.Create(1, 10);
                store.Add(net, new ModelMetadata { Name = ModelName(sizes[0]), ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = sizes[0], Preprocessing = new PreprocessingInfo() }, activate: false);
            }

            var (png, pixels) = SamplePng(args);
            Console.WriteLine($"predict bench: {string.Join(", ", sizes)} px NiN, engines {string.Join(", ", engines)}, precisions {string.Join(", ", precisions)}, device {info.Device}, {info.Threads} threads, TorchSharp {info.TorchSharpVersion}, {Environment.ProcessorCount} cores");
            if (precisions.Contains(Int8Bench.Int8))
            {
                foreach (var size in sizes)
                {
                    Int8Bench.Quantize(args, store.Find(ModelName(size), 1)!, info.Threads);
                }
            }

            // 1. The raw network in this process with each engine (preprocessing + forward + softmax, as the service runs
            //    it, on the image the HTTP requests send), and 2. the real service on loopback, one process per engine.
            var batch = args.Int("batch", 16);
            var torchDevice = TorchRuntime.ResolveDevice(device);
            var rawTorch = sizes.ToDictionary(s => s, s => (IRawRunner)new RawTorch(store.Find(ModelName(s), 1)!.Directory, s, torchDevice, pixels));
            var spinning = args.Get("serve", "").Contains("Serving:OnnxSpinning=true", StringComparison.OrdinalIgnoreCase);
            var rawOnnx = sizes.SelectMany(s => precisions.Select(p => (Size: s, Precision: p)))
                .ToDictionary(k => k, k => (IRawRunner)new RawOnnx(Int8Bench.ModelFile(store.Find(ModelName(k.Size), 1)!, k.Precision), k.Size, info.Threads, pixels, spinning));
            raws.AddRange(rawTorch.Values.Concat(rawOnnx.Values));
            foreach (var raw in raws)
            {
                raw.Time(batch, 0.5);
                raw.Time(1, 0.5);
            }

            var port = args.Int("port", 5123);
            foreach (var engine in engines)
            {
                foreach (var precision in precisions.Where(p => p != Int8Bench.Int8 || engine != "torch"))
                {
                    var process = StartService(args, home, port, device, engine, precision);
                    var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port++}"), Timeout = TimeSpan.FromMinutes(2) };
                    servers.Add((engine, precision, process, http));
                    await WaitUntilReadyAsync(http, process);
                    Console.WriteLine($"service {engine} {precision}: {await Int8Bench.ServingPrecisionAsync(http)}");
                }
            }

            // Warm-up: kernels, sessions and the connection pools settle before anything is timed.
            foreach (var (_, _, _, http) in servers)
            {
                foreach (var size in sizes)
                {
                    var warm = Stopwatch.StartNew();
                    while (warm.Elapsed.TotalSeconds < args.Double("warmup", 3))
                    {
                        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PredictAsync(http, png, ModelName(size))));
                    }
                }
            }

            // Every measure runs in each of several rounds, interleaved (sizes, engines, raw and HTTP), so a shared
            // machine's drift in speed falls on all of them alike and the ratios compare like with like.
            var rounds = Math.Max(1, args.Int("rounds", 5));
            var slice = seconds / rounds;
            var clientCounts = (args.Get("clients") ?? "1,4,16,64").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
            var results = new Dictionary<(int Size, string Engine, string Precision), Measures>();
            var rawResults = sizes.ToDictionary(s => s, _ => (TorchSingle: new List<double>(), TorchBatched: new List<double>(),
                OnnxSingle: precisions.ToDictionary(p => p, _ => new List<double>()), OnnxBatched: precisions.ToDictionary(p => p, _ => new List<double>()),
                OnnxAfterIdle: precisions.ToDictionary(p => p, _ => new List<double>())));
            var progress = new ProgressLine("predict: interleaved rounds", (long)rounds * sizes.Length, "measures");
            for (var round = 0; round < rounds; round++)
            {
                foreach (var size in sizes)
                {
                    progress.Report((long)round * sizes.Length + Array.IndexOf(sizes, size), $"round {round + 1}/{rounds}, {size} px");
                    var r = rawResults[size];
                    r.TorchBatched.AddRange(rawTorch[size].Time(batch, slice));
                    r.TorchSingle.AddRange(rawTorch[size].Time(1, slice));
                    foreach (var precision in precisions)
                    {
                        r.OnnxBatched[precision].AddRange(rawOnnx[(size, precision)].Time(batch, slice));
                        r.OnnxSingle[precision].AddRange(rawOnnx[(size, precision)].Time(1, slice));
                        r.OnnxAfterIdle[precision].AddRange(rawOnnx[(size, precision)].Time(1, slice / 2, IdleGap));
                    }

                    foreach (var (engine, precision, _, http) in servers)
                    {
                        var m = results.TryGetValue((size, engine, precision), out var found) ? found : results[(size, engine, precision)] = new Measures(clientCounts);
                        await m.RoundAsync(http, png, ModelName(size), clientCounts, slice);
                    }
                }
            }

            progress.Dispose(); // clears the live line before the figures

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{rounds} interleaved rounds of {slice:F1} s per measure"));
            foreach (var size in sizes)
            {
                var r = rawResults[size];
                double torchSingle = Median(r.TorchSingle), torchBatched = Median(r.TorchBatched);
                Console.WriteLine($"== {size} px ==");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw torch,       1 image: {torchSingle,7:F2} ms; batch {batch,2}: {torchBatched:F2} ms/image ({1000 / torchBatched:F1} images/s)"));
                foreach (var precision in precisions)
                {
                    double single = Median(r.OnnxSingle[precision]), batched = Median(r.OnnxBatched[precision]);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"raw onnxruntime {precision}, 1 image: {single,7:F2} ms; batch {batch,2}: {batched:F2} ms/image ({1000 / batched:F1} images/s); torch / onnxruntime {precision} single = {torchSingle / single:F2}x"));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"raw onnxruntime {precision}, 1 image after {IdleGap.TotalMilliseconds:F0} ms idle: {Median(r.OnnxAfterIdle[precision]),7:F2} ms (x{Median(r.OnnxAfterIdle[precision]) / single:F2} the back-to-back pass: what a lone client's request follows)"));
                }

                if (precisions.Contains(Int8Bench.Fp32) && precisions.Contains(Int8Bench.Int8))
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"raw int8 speed-up over fp32: 1 image x{Median(r.OnnxSingle[Int8Bench.Fp32]) / Median(r.OnnxSingle[Int8Bench.Int8]):F2}, batch {batch} x{Median(r.OnnxBatched[Int8Bench.Fp32]) / Median(r.OnnxBatched[Int8Bench.Int8]):F2}"));
                }

                foreach (var (engine, precision, _, _) in servers)
                {
                    var m = results[(size, engine, precision)];
                    var p50 = Median(m.Latencies);
                    var p99 = m.Latencies[Math.Min(m.Latencies.Count - 1, (int)(m.Latencies.Count * 0.99))];
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"engine {engine} {precision}: HTTP /predict 1 client p50 {p50:F2} ms, p99 {p99:F2} ms ({m.Latencies.Count} requests); p50 / raw torch single = {p50 / torchSingle:F2}x, p50 / raw onnxruntime {precision} single = {p50 / Median(r.OnnxSingle[precision]):F2}x (after idle {p50 / Median(r.OnnxAfterIdle[precision]):F2}x)"));
                    if (m.Parts.Count > 0)
                    {
                        // The service's own Server-Timing figures (medians): what is left of p50 is HTTP, routing and the client.
                        Console.WriteLine("  inside the service (median ms): " + string.Join(", ", m.Parts.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {Median(p.Value):F2}"))));
                    }

                    if (m.Floor.Count > 0 && engine != "torch" && r.OnnxAfterIdle.TryGetValue(precision, out var idle))
                    {
                        // What the host and the client take of a lone client's p50 before the service does anything but the
                        // pass: the pass as it runs after an idle gap, plus a round trip that does no work. Its ratio to the
                        // back-to-back pass is the part of the p50 ratio that serving code does not control (short of keeping
                        // threads spinning between requests, docs/benchmarks.md).
                        var floor = Median(m.Floor);
                        var least = Median(idle) + floor;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"  HTTP floor: GET /v2/health/live p50 {floor:F2} ms; the pass after idle plus it {least:F2} ms = {least / Median(r.OnnxSingle[precision]):F2}x the raw pass (host and client alone)"));
                    }

                    double? oneClient = null;
                    foreach (var clients in clientCounts)
                    {
                        var rate = m.Served[clients].Requests / m.Served[clients].Seconds;
                        oneClient ??= rate;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"  {clients,2} clients: {rate,8:F1} images/s; x{rate / oneClient.Value:F2} of {clientCounts[0]} client(s)"));
                    }

                    if (m.PerRound.Count > 0)
                    {
                        m.PerRound.Sort();
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  16 clients / 1 client, per round: {string.Join(" ", m.PerRound.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)))}"));
                    }

                    if (precision == Int8Bench.Int8 && results.TryGetValue((size, engine, Int8Bench.Fp32), out var fp32))
                    {
                        var rates = string.Join(", ", clientCounts.Select(c => string.Create(CultureInfo.InvariantCulture,
                            $"{c} clients x{m.Served[c].Requests / m.Served[c].Seconds / (fp32.Served[c].Requests / fp32.Served[c].Seconds):F2}")));
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  HTTP int8 vs fp32 ({engine}): p50 x{Median(fp32.Latencies) / p50:F2} faster; images/s {rates}"));
                    }
                }
            }

            // The operator figures, on the first engine's service at the first size: overload and hot swaps.
            var (firstEngine, _, firstProcess, firstHttp) = servers[0];
            var overloadSeconds = args.Double("overload-seconds", 5);
            if (overloadSeconds > 0)
            {
                Console.WriteLine($"== operator figures: engine {firstEngine}, {sizes[0]} px ==");
                await ServingLoad.OverloadAsync(firstHttp, png, ModelName(sizes[0]), overloadSeconds, overloadConnections);
            }

            // A service that did not survive the flood is a finding, printed as one; the figures above stay.
            if (firstProcess.WaitForExit(TimeSpan.FromMilliseconds(200)))
            {
                Console.WriteLine($"the service exited (status {firstProcess.ExitCode}) under the overload figure; no swap figure");
                return 1;
            }

            if (swaps > 0)
            {
                await ServingLoad.SwapAsync(firstHttp, png, ModelName(sizes[0]), [1, 2, 3], swaps, args.Double("swap-pause", 1));
            }

            return 0;
        }
        finally
        {
            foreach (var (_, _, process, http) in servers)
            {
                http.Dispose();
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    process.WaitForExit();
                }
            }

            foreach (var raw in raws)
            {
                raw.Dispose();
            }

            try
            {
                Directory.Delete(home, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>How long the raw pass's thread sleeps before each timed pass in the "after idle" figure: about the idle time between a lone client's requests.</summary>
    private static readonly TimeSpan IdleGap = TimeSpan.FromMilliseconds(1);

    private static string ModelName(int size) => $"bench-{size}";

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

    /// <summary>One (size, engine)'s HTTP figures, gathered over the rounds.</summary>
    private sealed class Measures(int[] clientCounts)
    {
        public List<double> Latencies { get; } = [];

        public Dictionary<string, List<double>> Parts { get; } = [];

        /// <summary>Round trips of <c>GET /v2/health/live</c> on the same client: what any request costs here besides its own work.</summary>
        public List<double> Floor { get; } = [];

        public Dictionary<int, (long Requests, double Seconds)> Served { get; } = clientCounts.ToDictionary(c => c, _ => (0L, 0.0));

        public List<double> PerRound { get; } = [];

        public async Task RoundAsync(HttpClient http, byte[] png, string model, int[] clients, double slice)
        {
            var floorWatch = Stopwatch.StartNew();
            while (floorWatch.Elapsed.TotalSeconds < slice / 4)
            {
                var t = Stopwatch.GetTimestamp();
                using var live = await http.GetAsync("/v2/health/live");
                await live.Content.ReadAsByteArrayAsync();
                Floor.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }

            var latencyWatch = Stopwatch.StartNew();
            while (latencyWatch.Elapsed.TotalSeconds < slice)
            {
                var t = Stopwatch.GetTimestamp();
                var timing = await PredictAsync(http, png, model);
                Latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                foreach (var (name, ms) in ParseServerTiming(timing))
                {
                    (Parts.TryGetValue(name, out var list) ? list : Parts[name] = []).Add(ms);
                }
            }

            var rates = new Dictionary<int, double>();
            foreach (var count in clients)
            {
                var (requests, elapsed) = await ThroughputAsync(http, png, model, count, slice);
                Served[count] = (Served[count].Requests + requests, Served[count].Seconds + elapsed);
                rates[count] = requests / elapsed;
            }

            if (rates.TryGetValue(1, out var one) && rates.TryGetValue(16, out var sixteen))
            {
                PerRound.Add(sixteen / one);
            }
        }
    }

    internal static (byte[] Png, byte[] Pixels) SamplePng(Args args)
    {
        var data = BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), BuiltInDatasets.FashionMnist, 1, 1);
        using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(data.Test.Pixels, 0, bitmap.GetPixels(), 784);
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return (encoded.ToArray(), data.Test.Pixels[..784]);
    }

    internal static Process StartService(Args args, string home, int port, string device, string engine, string precision = "fp32", IReadOnlyDictionary<string, string?>? environment = null)
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
        start.Environment["Serving__Engine"] = engine;
        start.Environment["Serving__Precision"] = precision;
        if (precision == Int8Bench.Int8)
        {
            start.Environment["Serving__Int8MarginPoints"] = "100"; // the bench's random-weight networks: speed only, see Int8Bench
        }
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            start.Environment[key] = value; // null removes it
        }

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

    internal static async Task<string?> PredictAsync(HttpClient http, byte[] png, string model)
    {
        using var content = new ByteArrayContent(png);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var response = await http.PostAsync(new Uri($"/predict?topK=1&model={model}", UriKind.Relative), content);
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

    internal static async Task<(long Requests, double Seconds)> ThroughputAsync(HttpClient http, byte[] png, string model, int clients, double seconds)
    {
        var watch = Stopwatch.StartNew();
        var count = 0;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (watch.Elapsed.TotalSeconds < seconds)
            {
                await PredictAsync(http, png, model);
                Interlocked.Increment(ref count);
            }
        }));
        return (count, watch.Elapsed.TotalSeconds);
    }
}
