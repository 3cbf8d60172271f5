using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>memory</c>: a long-lived service's resident memory across many training runs, per allocator setup, in one run.
/// One real service per variant (<c>glibc</c>: the C library's defaults, no trimming; <c>shipped</c>: what ./nin, the
/// image, compose, k8s and the bundle set, MALLOC_ARENA_MAX=2 and a trim after each run; <c>arena1</c>: MALLOC_ARENA_MAX=1),
/// all started together; run i goes to each in turn, so the machine's load falls on all alike. Every other run is cancelled
/// mid-epoch. After each run: VmRSS of each service. At the end: growth from run 5 to the last, training images/s of the
/// finished runs, and /predict requests/s on one client (the speed the setup must not cost), each against glibc's.
/// </summary>
internal static class MemoryCommand
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private static IReadOnlyDictionary<string, string?> Environment(string variant) => variant switch
    {
        "glibc" => new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = null, ["NIN_MALLOC_TRIM"] = "0" },
        "shipped" => new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = "2", ["NIN_MALLOC_TRIM"] = null },
        "arena1" => new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = "1", ["NIN_MALLOC_TRIM"] = null },
        "trim" => new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = null, ["NIN_MALLOC_TRIM"] = null },
        _ => throw new ArgumentException($"Unknown variant '{variant}': glibc, shipped, arena1, trim."),
    };

    public static async Task<int> RunAsync(Args args)
    {
        var variants = args.Get("variants", "glibc,shipped").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var runs = args.Int("runs", 20);
        var images = args.Int("images", 1280);
        var imageSize = args.Int("image-size", 96);
        var batch = args.Int("batch", 64);
        var predictSeconds = args.Double("predict-seconds", 10);
        var data = Path.GetFullPath(args.Get("data", System.Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"));
        var port = args.Int("port", 5160);
        var (png, _) = PredictCommand.SamplePng(args);
        Console.WriteLine($"memory bench: {runs} runs per service ({images} images, 1 epoch, {imageSize} px, batch {batch}; even runs cancelled mid-epoch), variants {string.Join(", ", variants)}, {System.Environment.ProcessorCount} cores");

        var services = new List<Service>();
        try
        {
            foreach (var (variant, i) in variants.Select((v, i) => (v, i)))
            {
                var home = Directory.CreateTempSubdirectory("nin-bench-memory-").FullName;
                // A served model, so the service is ready and /predict can be timed at the end.
                manual_seed(0);
                using (var net = NetworkArchitectures.Get(NetworkArchitectures.NinName).Create(1, 10))
                {
                    new ModelStore(Path.Combine(home, "models")).Add(net, new ModelMetadata { Name = "served", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = imageSize, Preprocessing = new PreprocessingInfo() }, activate: true);
                }

                var env = new Dictionary<string, string?>(Environment(variant)) { ["Nin__DataDirectory"] = data, ["Nin__DownloadDatasets"] = "false" };
                var process = PredictCommand.StartService(args, home, port + i, "cpu", "auto", environment: env);
                var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port + i}"), Timeout = TimeSpan.FromMinutes(10) };
                services.Add(new Service(variant, home, process, http));
            }

            foreach (var service in services)
            {
                await PredictCommand.WaitUntilReadyAsync(service.Http, service.Process);
                service.Rss.Add(Rss(service.Process));
            }

            Console.WriteLine($"{"run",4} {"outcome",-10} " + string.Join(" ", services.Select(s => $"{s.Variant + " RSS MB",16}")));
            Console.WriteLine($"{0,4} {"start",-10} " + string.Join(" ", services.Select(s => $"{s.Rss[0] / 1048576.0,16:F0}")));
            var progress = new ProgressLine("memory: training runs", (long)runs * services.Count, "runs");
            for (var run = 1; run <= runs; run++)
            {
                var cancel = run % 2 == 0;
                foreach (var service in services)
                {
                    progress.Report((long)(run - 1) * services.Count + services.IndexOf(service), $"run {run}/{runs} on {service.Variant}");
                    await TrainAsync(service, run, cancel, images, imageSize, batch);
                    await Task.Delay(1000); // let the run's thread end and the trim happen
                    service.Rss.Add(Rss(service.Process));
                }

                progress.WriteLine($"{run,4} {(cancel ? "cancelled" : "finished"),-10} " + string.Join(" ", services.Select(s => $"{s.Rss[^1] / 1048576.0,16:F0}")));
            }

            progress.Dispose();

            foreach (var service in services)
            {
                await PredictCommand.PredictAsync(service.Http, png, "served"); // warm
                var (requests, seconds) = await PredictCommand.ThroughputAsync(service.Http, png, "served", 1, predictSeconds);
                service.PredictPerSecond = requests / seconds;
            }

            var baseline = services[0];
            var from = Math.Min(5, runs);
            Console.WriteLine();
            Console.WriteLine($"{"variant",-10} {"RSS run " + from + " MB",14} {"RSS run " + runs + " MB",14} {"growth " + from + "->" + runs,14} {"train img/s",12} {"vs " + baseline.Variant,10} {"predict req/s",14} {"vs " + baseline.Variant,10}");
            foreach (var s in services)
            {
                var growth = (s.Rss[runs] - s.Rss[from]) / (double)s.Rss[from];
                var train = s.TrainRates.Count > 0 ? s.TrainRates.Average() : double.NaN;
                var baseTrain = baseline.TrainRates.Count > 0 ? baseline.TrainRates.Average() : double.NaN;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{s.Variant,-10} {s.Rss[from] / 1048576.0,14:F0} {s.Rss[runs] / 1048576.0,14:F0} {growth,13:P1} {train,12:F1} {train / baseTrain,10:F3} {s.PredictPerSecond,14:F1} {s.PredictPerSecond / baseline.PredictPerSecond,10:F3}"));
            }

            Console.WriteLine("(figures shared with whatever else runs on this machine; growth under 10 % from run 5 is the target)");
            return 0;
        }
        finally
        {
            foreach (var service in services)
            {
                service.Http.Dispose();
                try
                {
                    service.Process.Kill(entireProcessTree: true);
                    service.Process.WaitForExit(10_000);
                }
                catch (InvalidOperationException)
                {
                }

                try
                {
                    Directory.Delete(service.Home, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static async Task TrainAsync(Service service, int run, bool cancel, int images, int imageSize, int batch)
    {
        using var posted = await service.Http.PostAsJsonAsync(new Uri("/train", UriKind.Relative), new
        {
            dataset = "fashion-mnist", epochs = 1, batchSize = batch, imageSize, maxTrainImages = images, maxTestImages = 256,
            modelName = "memory", seed = run, activate = false,
        });
        posted.EnsureSuccessStatusCode();
        var jobId = (await posted.Content.ReadFromJsonAsync<JsonElement>(Json)).GetProperty("jobId").GetString()!;
        var cancelled = false;
        while (true)
        {
            var job = await service.Http.GetFromJsonAsync<JsonElement>(new Uri($"/train/{jobId}", UriKind.Relative), Json);
            var status = job.GetProperty("status").GetString();
            if (status is "Succeeded" or "Failed" or "Cancelled")
            {
                if (status == "Succeeded")
                {
                    service.TrainRates.Add(job.GetProperty("epochs")[0].GetProperty("examplesPerSecond").GetDouble());
                }
                else if (status == "Failed")
                {
                    Console.Error.WriteLine($"  {service.Variant} run {run} failed: {job.GetProperty("error").GetString()}");
                }

                return;
            }

            var progress = job.GetProperty("progress");
            if (cancel && !cancelled && progress.GetProperty("batches").GetInt32() is > 0 and var batches && progress.GetProperty("batch").GetInt32() >= batches / 2)
            {
                using var _ = await service.Http.DeleteAsync(new Uri($"/train/{jobId}", UriKind.Relative));
                cancelled = true;
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Resident memory of the process (VmRSS), in bytes.</summary>
    private static long Rss(Process process)
    {
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("No VmRSS for the service.");
    }

    private sealed class Service(string variant, string home, Process process, HttpClient http)
    {
        public string Variant { get; } = variant;

        public string Home { get; } = home;

        public Process Process { get; } = process;

        public HttpClient Http { get; } = http;

        public List<long> Rss { get; } = [];

        public List<double> TrainRates { get; } = [];

        public double PredictPerSecond { get; set; }
    }
}
