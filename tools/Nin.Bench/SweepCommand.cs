using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Experiments;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>sweep</c>: what early stopping saves. Runs a learning-rate grid of one preset on the synthetic shapes (or a built-in
/// dataset) twice, both measured: as a sweep (trials in grid order, each judged after every epoch by the service's own
/// <see cref="EarlyStopping"/> rule against the trials before it), then in full (every trial to its last epoch; a trial
/// the sweep already ran to the end is not run again, its measured cost counts). Prints each trial's curve and verdict,
/// the best test accuracy each way, and the CPU time (process CPU seconds, all threads) and wall time of both.
/// </summary>
internal static class SweepCommand
{
    public static int Run(Args args)
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = args.Get("device", "cpu"), Threads = args.Int("threads", 0) });
        var device = TorchRuntime.ResolveDevice(args.Get("device", "cpu"));
        var preset = TrainingRecipes.Find(args.Get("preset", TrainingRecipes.RobustName)) ?? throw new ArgumentException("unknown --preset");
        var rates = args.Get("lrs", "0.001,0.003,0.01,0.03,0.1,0.3,1,3").Split(',').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var epochs = args.Int("epochs", 8);
        var rule = args.Get("rule", "median") switch
        {
            "median" => StoppingRule.Median,
            "asha" => StoppingRule.Asha,
            "none" => StoppingRule.None,
            var other => throw new ArgumentException($"unknown --rule {other} (median, asha, none)"),
        };
        var policy = new StoppingPolicy(rule, args.Int("grace", 1), args.Int("min-trials", 2), args.Int("eta", 3));
        var seed = args.Int("seed", 1);

        var (data, imageSize, what) = BenchData.Load(args, args.Flag("synthetic") || args.Get("dataset") is null);

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sweep: {what} ({data.Train.Count} train / {data.Test.Count} test at {imageSize} px), preset {preset.Name}, {epochs} epochs, learning rates {string.Join(", ", rates)}; rule {policy.Rule} (grace {policy.GraceEpochs}, min trials {policy.MinTrials}{(rule == StoppingRule.Asha ? $", η {policy.ReductionFactor}" : "")}), seed {seed}, {device}, {info.Threads} threads"));

        // 1. The sweep: trials in grid order, each judged after every epoch against the curves of the trials before it.
        Console.WriteLine("as a sweep (early stopping):");
        var curves = new List<TrialCurve>();
        var swept = new List<Trial>();
        for (var i = 0; i < rates.Length; i++)
        {
            var trial = RunTrial(i + 1, rates[i], preset, data, imageSize, epochs, seed, device, (curve) => EarlyStopping.Judge(policy, curve, curves, epochs, "testAccuracy", maximise: true), $"sweep trial {i + 1}/{rates.Length}");
            curves.Add(new TrialCurve(i + 1, trial.Accuracies));
            swept.Add(trial);
            Print(trial);
        }

        // 2. The grid in full: the trials the sweep stopped, run to their end (the others already were, same seed and data).
        Console.WriteLine("the grid in full (the trials the sweep stopped, run to their last epoch):");
        var full = new List<Trial>();
        foreach (var trial in swept)
        {
            if (trial.Verdict is null)
            {
                full.Add(trial);
                continue;
            }

            var rerun = RunTrial(trial.Number, trial.LearningRate, preset, data, imageSize, epochs, seed, device, _ => null, $"full trial {trial.Number}/{rates.Length}");
            full.Add(rerun);
            Print(rerun);
        }

        var (sweepCpu, fullCpu) = (swept.Sum(t => t.CpuSeconds), full.Sum(t => t.CpuSeconds));
        var (sweepWall, fullWall) = (swept.Sum(t => t.WallSeconds), full.Sum(t => t.WallSeconds));
        var sweepBest = swept.Where(t => t.Verdict is null).MaxBy(t => t.Final);
        var fullBest = full.MaxBy(t => t.Final)!;
        Console.WriteLine();
        Console.WriteLine("| | trials stopped | epochs trained | best test accuracy (lr) | CPU seconds | wall seconds |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| sweep, {policy.Rule} rule | {swept.Count(t => t.Verdict is not null)} of {swept.Count} | {swept.Sum(t => t.Accuracies.Count)} | {sweepBest?.Final:F4} ({sweepBest?.LearningRate}) | {sweepCpu:F0} | {sweepWall:F0} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| grid in full | 0 of {full.Count} | {full.Sum(t => t.Accuracies.Count)} | {fullBest.Final:F4} ({fullBest.LearningRate}) | {fullCpu:F0} | {fullWall:F0} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sweep/full: CPU time {sweepCpu / fullCpu:F2}x, wall time {sweepWall / fullWall:F2}x; the sweep's best {(sweepBest is not null && sweepBest.Final >= fullBest.Final - 1e-9 ? "is" : "is not")} the grid's best; reaches 0.9: {(sweepBest?.Final >= 0.9 ? "yes" : "no")}"));
        return 0;
    }

    private sealed record Trial(int Number, double LearningRate, IReadOnlyList<double> Accuracies, StopVerdict? Verdict, string? Failure, double CpuSeconds, double WallSeconds)
    {
        public double Final => Accuracies.Count > 0 ? Accuracies[^1] : 0;
    }

    private static Trial RunTrial(int number, double lr, RecipePreset preset, DatasetSplit data, int imageSize, int epochs, int seed, Device device,
        Func<TrialCurve, StopVerdict?> judge, string phase)
    {
        var options = TrainingRecipes.Options(preset, imageSize, seed) with { Epochs = epochs, LearningRate = lr };
        manual_seed(seed);
        using var network = NetworkArchitectures.Get(preset.Architecture).Create(data.Train.Channels, data.Train.ClassNames.Count);
        using var trainer = new Trainer(network, data, options, device);
        var accuracies = new List<double>();
        using var observer = new Judged(number, accuracies, judge, new ProgressLine(phase, (long)epochs * data.Train.Count, "images"), epochs, data.Train.Count, options.BatchSize);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        StopVerdict? verdict = null;
        string? failure = null;
        try
        {
            trainer.Run(observer, CancellationToken.None);
        }
        catch (StopTrial stop)
        {
            verdict = stop.Verdict;
        }
        catch (TrainingDivergedException ex)
        {
            failure = ex.Message;
            verdict = new StopVerdict("diverged", ex.Message);
        }

        var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        return new Trial(number, lr, accuracies, verdict, failure, cpuSeconds, watch.Elapsed.TotalSeconds);
    }

    private static void Print(Trial t) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  trial {t.Number} lr {t.LearningRate}: test accuracy {string.Join(" ", t.Accuracies.Select(a => a.ToString("F3", CultureInfo.InvariantCulture)))}; {(t.Verdict is null ? "finished" : "STOPPED after epoch " + t.Accuracies.Count + ": " + t.Verdict.Reason)}; {t.CpuSeconds:F0} CPU s, {t.WallSeconds:F0} s"));

    private sealed class StopTrial(StopVerdict verdict) : Exception(verdict.Reason)
    {
        public StopVerdict Verdict { get; } = verdict;
    }

    private sealed class Judged(int number, List<double> accuracies, Func<TrialCurve, StopVerdict?> judge, ProgressLine progress, int epochs, int trainImages, int batchSize)
        : ITrainingObserver, IDisposable
    {
        public void OnBatch(BatchProgress p) => progress.Report(
            Math.Min((long)epochs * trainImages, ((long)(p.Epoch - 1) * p.Batches + p.Batch) * batchSize),
            string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch}/{epochs} batch {p.Batch}/{p.Batches} loss {p.Loss:F4}"));

        public void OnEpoch(EpochMetrics metrics)
        {
            accuracies.Add(metrics.TestAccuracy);
            if (judge(new TrialCurve(number, [.. accuracies])) is { } verdict)
            {
                throw new StopTrial(verdict);
            }
        }

        public void Dispose() => progress.Dispose();
    }
}
