using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nin.Model.Checkpoints;
using Nin.Model.Training;

namespace Nin.Bench;

/// <summary>
/// <c>train --compare-pytorch</c>: CPU training speed of Nin's own loop (the <see cref="Trainer"/>, d2l's NiN and recipe)
/// against the PyTorch anchor (<c>tools/gpu/d2l_nin_pytorch.py --device cpu</c>) on the same images, with the same
/// image size, batch and thread count. Each round runs both, each in a fresh process (so each pays the same start-up
/// and first-batch warm-up outside or inside its timed epoch alike), alternating which goes first, because a shared
/// machine's load drifts. Both report training images per second over the timed epochs (data step, forward, backward
/// and optimizer step; start-up, data loading and the test pass excluded), as the median of the epochs after the first
/// (the first when there is one). Ends with each side's median, median(Nin)/median(PyTorch) and the median of the
/// per-round ratios. <c>--breakdown</c> also splits each side's batches into data, forward, backward and step.
/// </summary>
internal static class TorchComparison
{
    private static readonly string[] Phases = ["data", "forward", "backward", "step"];

    public static int Run(Args args)
    {
        var rounds = args.Int("rounds", 5);
        var epochs = args.Int("epochs", 1);
        var maxTrain = args.Int("max-train", 2560);
        var maxTest = args.Int("max-test", 256);
        var imageSize = args.Int("image-size", 96);
        var batch = args.Int("batch", 128);
        var threads = args.Int("threads", 2);
        var breakdown = args.Flag("breakdown");
        var dataset = args.Get("dataset", "fashion-mnist");
        var dataDir = Path.GetFullPath(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"));
        var python = args.Get("python", "python3");
        // --nin-env / --pytorch-env "NAME=VALUE ...": extra environment for one side's processes (one variable at a time).
        var ninEnv = ParseEnv(args.Get("nin-env"));
        var torchEnv = ParseEnv(args.Get("pytorch-env"));
        if (rounds < 1 || epochs < 1 || maxTrain < 1 || threads < 1)
        {
            Console.Error.WriteLine("train --compare-pytorch: --rounds, --epochs, --max-train and --threads must be at least 1.");
            return 2;
        }

        var script = args.Get("script") ?? FindScript();
        if (script is null || !File.Exists(script))
        {
            Console.Error.WriteLine("train --compare-pytorch: tools/gpu/d2l_nin_pytorch.py not found above the current folder; name it with --script PATH.");
            return 2;
        }

        var probe = RunProcess(python, ["-c", "import torch; print(torch.__version__, torch.__config__.parallel_info().splitlines()[-1].strip())"], new Dictionary<string, string>(), out var probeOutput);
        if (probe != 0)
        {
            Console.Error.WriteLine($"train --compare-pytorch: PyTorch is missing: '{python} -c \"import torch\"' failed ({Tail(probeOutput, 3).Trim()}). " +
                "Run it through ./nin (its Debian 13 root has python3-torch), install PyTorch for that Python, or name another with --python PATH.");
            return 1;
        }

        var ninArgs = new List<string>
        {
            "train", "--device", "cpu", "--data", dataDir, "--dataset", dataset, "--epochs", Text(epochs), "--batch", Text(batch),
            "--image-size", Text(imageSize), "--max-train", Text(maxTrain), "--max-test", Text(maxTest), "--threads", Text(threads),
        };
        var torchArgs = new List<string>
        {
            script, "--device", "cpu", "--data", Path.Combine(dataDir, dataset), "--epochs", Text(epochs), "--batch", Text(batch),
            "--image-size", Text(imageSize), "--max-train", Text(maxTrain), "--max-test", Text(maxTest), "--threads", Text(threads),
        };
        if (breakdown)
        {
            ninArgs.Add("--breakdown");
            torchArgs.Add("--breakdown");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train --compare-pytorch: d2l NiN on {dataset}, {maxTrain} images, {imageSize} px, batch {batch}, {threads} threads, {epochs} epoch(s), {rounds} interleaved rounds, {Environment.ProcessorCount} cores"));
        Console.WriteLine($"  nin:     {Environment.ProcessPath} (TorchSharp {Nin.Model.Runtime.TorchRuntime.TorchSharpVersion}){DescribeEnv(ninEnv)}");
        Console.WriteLine($"  pytorch: {python} {Path.GetFileName(script)} (torch {probeOutput.Trim()}){DescribeEnv(torchEnv)}");

        var nin = new List<RunResult>();
        var torch = new List<RunResult>();
        var work = Path.Combine(Path.GetTempPath(), $"nin-compare-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            using var progress = new ProgressLine("train --compare-pytorch", rounds * 2L, "runs");
            for (var round = 1; round <= rounds; round++)
            {
                var ninFirst = round % 2 == 1;
                RunResult? n = null, t = null;
                foreach (var side in ninFirst ? new[] { "nin", "pytorch" } : ["pytorch", "nin"])
                {
                    progress.Report(((round - 1) * 2L) + (n is null && t is null ? 0 : 1), $"round {round}/{rounds}: {side}");
                    var json = Path.Combine(work, $"{side}-{round}.json");
                    if (side == "nin")
                    {
                        n = RunSide(side, SelfCommand(), [.. SelfArguments(), .. ninArgs, "--json", json], ninEnv, json);
                    }
                    else
                    {
                        t = RunSide(side, python, [.. torchArgs, "--json", json], torchEnv, json);
                    }
                }

                nin.Add(n!);
                torch.Add(t!);
                progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round} ({(ninFirst ? "nin first" : "pytorch first")}): nin {n!.ImagesPerSecond:F1} img/s, pytorch {t!.ImagesPerSecond:F1} img/s, ratio {n.ImagesPerSecond / t.ImagesPerSecond:F2}x" +
                    $" (test acc {n.TestAccuracy:F3} / {t.TestAccuracy:F3})"));
            }
        }
        catch (SideFailedException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        var ninMedian = Median(nin.Select(r => r.ImagesPerSecond));
        var torchMedian = Median(torch.Select(r => r.ImagesPerSecond));
        var roundRatio = Median(nin.Zip(torch, (a, b) => a.ImagesPerSecond / b.ImagesPerSecond));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"nin:     median {ninMedian:F1} img/s (rounds {string.Join(", ", nin.Select(r => r.ImagesPerSecond.ToString("F1", CultureInfo.InvariantCulture)))})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"pytorch: median {torchMedian:F1} img/s (rounds {string.Join(", ", torch.Select(r => r.ImagesPerSecond.ToString("F1", CultureInfo.InvariantCulture)))})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"CPU ratio nin/pytorch: {ninMedian / torchMedian:F2}x of the medians, {roundRatio:F2}x median of the per-round ratios"));
        if (breakdown)
        {
            var ninPhases = MeanPhases(nin);
            var torchPhases = MeanPhases(torch);
            Console.WriteLine("breakdown (seconds per epoch, mean over rounds):");
            Console.WriteLine($"  nin:     {DescribePhases(ninPhases)}");
            Console.WriteLine($"  pytorch: {DescribePhases(torchPhases)}");
            Console.WriteLine("  nin/pytorch time: " + string.Join(" · ", Phases.Select(p =>
                string.Create(CultureInfo.InvariantCulture, $"{p} {ninPhases.GetValueOrDefault(p) / Math.Max(1e-9, torchPhases.GetValueOrDefault(p)):F2}x"))));
            if (epochs == 1)
            {
                // The first batch pays each side's warm-up (oneDNN kernel creation, first allocations, .NET's JIT): the
                // rest of the epoch is the steady speed.
                double Steady(RunResult r) => r.Phases?.GetValueOrDefault("firstBatch") is > 0 and var first && maxTrain > batch
                    ? (maxTrain - batch) / ((maxTrain / r.ImagesPerSecond) - first) : double.NaN;
                var ninSteady = Median(nin.Select(Steady));
                var torchSteady = Median(torch.Select(Steady));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  first batch (warm-up), median: nin {Median(nin.Select(r => r.Phases?.GetValueOrDefault("firstBatch") ?? double.NaN)):F2} s, pytorch {Median(torch.Select(r => r.Phases?.GetValueOrDefault("firstBatch") ?? double.NaN)):F2} s; " +
                    $"without it: nin {ninSteady:F1} img/s, pytorch {torchSteady:F1} img/s, ratio {ninSteady / torchSteady:F2}x (median of rounds {Median(nin.Zip(torch, (a, b) => Steady(a) / Steady(b))):F2}x)"));
            }
        }

        return 0;
    }

    /// <summary>"data 0.41 s (3%) · forward 4.80 s (37%) · ..." for seconds per phase.</summary>
    public static string DescribePhases(IReadOnlyDictionary<string, double> seconds)
    {
        var total = Math.Max(1e-9, seconds.Values.Sum());
        return string.Join(" · ", Phases.Where(seconds.ContainsKey).Select(p =>
            string.Create(CultureInfo.InvariantCulture, $"{p} {seconds[p]:F2} s ({100 * seconds[p] / total:F0}%)")));
    }

    /// <summary>Writes the figures of a Nin run under the names the PyTorch anchor's --json uses.</summary>
    public static void WriteResult(string path, string engine, string device, int threads, ModelMetrics metrics, IReadOnlyList<EpochMetrics> epochs, int trained, TrainingPhaseTimes? phases)
    {
        var result = new JsonObject
        {
            ["engine"] = engine,
            ["device"] = device,
            ["threads"] = threads,
            ["testAccuracy"] = metrics.TestAccuracy,
            ["epochs"] = new JsonArray([.. epochs.Select(e => (JsonNode)new JsonObject
            {
                ["epoch"] = e.Epoch,
                ["trainLoss"] = e.TrainLoss,
                ["trainAccuracy"] = e.TrainAccuracy,
                ["testAccuracy"] = e.TestAccuracy,
                ["imagesPerSecond"] = e.ExamplesPerSecond,
                ["seconds"] = e.Seconds,
            })]),
            ["breakdown"] = phases is null ? null : new JsonObject(Enum.GetValues<TrainingPhase>().Select(p =>
                KeyValuePair.Create(p.ToString().ToLowerInvariant(), (JsonNode?)(phases[p].TotalSeconds / Math.Max(1, trained))))
                .Append(KeyValuePair.Create("firstBatch", (JsonNode?)phases.FirstBatch.TotalSeconds))),
        };
        File.WriteAllText(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private sealed record RunResult(double ImagesPerSecond, double TestAccuracy, IReadOnlyDictionary<string, double>? Phases);

    private sealed class SideFailedException(string message) : Exception(message);

    private static RunResult RunSide(string side, string command, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> env, string json)
    {
        var rc = RunProcess(command, arguments, env, out var output);
        if (rc != 0 || !File.Exists(json))
        {
            throw new SideFailedException($"train --compare-pytorch: the {side} run failed (exit code {rc}): {command} {string.Join(' ', arguments)}\n{Tail(output, 15)}");
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        // The same statistic for both: the median of the epochs after the first, or the first when there is one.
        var perEpoch = root.GetProperty("epochs").EnumerateArray().Select(e => e.GetProperty("imagesPerSecond").GetDouble()).ToList();
        var speed = Median(perEpoch.Count > 1 ? perEpoch.Skip(1) : perEpoch);
        Dictionary<string, double>? phases = null;
        if (root.TryGetProperty("breakdown", out var b) && b.ValueKind == JsonValueKind.Object)
        {
            phases = b.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number).ToDictionary(p => p.Name, p => p.Value.GetDouble());
        }

        return new RunResult(speed, root.GetProperty("testAccuracy").GetDouble(), phases);
    }

    private static int RunProcess(string command, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> env, out string output)
    {
        var info = new ProcessStartInfo(command)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (name, value) in env)
        {
            info.Environment[name] = value;
        }

        info.Environment["NIN_QUIET"] = "1";
        try
        {
            using var process = Process.Start(info)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            output = stdout + stderr.Result;
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            output = ex.Message;
            return -1;
        }
    }

    /// <summary>This bench itself: its apphost, or dotnet and its assembly.</summary>
    private static string SelfCommand() => Environment.ProcessPath ?? "dotnet";

    private static string[] SelfArguments()
    {
        var host = Path.GetFileNameWithoutExtension(Environment.ProcessPath ?? "dotnet");
        return host.Equals("dotnet", StringComparison.OrdinalIgnoreCase) ? [typeof(TorchComparison).Assembly.Location] : [];
    }

    private static string? FindScript()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "tools", "gpu", "d2l_nin_pytorch.py");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static Dictionary<string, string> ParseEnv(string? text) =>
        (text ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(pair => pair.Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");

    private static string DescribeEnv(IReadOnlyDictionary<string, string> env) =>
        env.Count == 0 ? "" : ", with " + string.Join(' ', env.Select(e => $"{e.Key}={e.Value}"));

    private static Dictionary<string, double> MeanPhases(IReadOnlyList<RunResult> runs) =>
        Phases.ToDictionary(p => p, p => runs.Average(r => r.Phases?.GetValueOrDefault(p) ?? 0));

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
