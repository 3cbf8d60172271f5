using System.Diagnostics;
using System.Globalization;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>train --presets d2l,robust</c>: trains each preset for each seed with the service's loop and prints test
/// accuracy per preset and seed. <c>--synthetic</c> trains on a small own dataset of shapes the bench makes
/// up (<c>--classes</c> 4, <c>--per-class</c> 100, stored at <c>--stored-size</c> 32 px, trained at the
/// smallest input, 67 px); without it, on a built-in dataset (<c>--dataset</c>, <c>--image-size</c> 96).
/// Explicit options (<c>--epochs</c>, <c>--batch</c>, <c>--lr</c>) override every preset's value.
/// </summary>
internal static class PresetComparison
{
    public static int Run(Args args)
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = args.Get("device", "auto"), Threads = args.Int("threads", 0) });
        var device = TorchRuntime.ResolveDevice(args.Get("device", "auto"));
        var presets = args.Get("presets", "d2l,robust").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => TrainingRecipes.Find(p) ?? throw new ArgumentException($"unknown preset '{p}' (known: {string.Join(", ", TrainingRecipes.Names)})")).ToArray();
        var seeds = args.Get("seeds", "1,2,3").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();

        var (data, imageSize, what) = BenchData.Load(args, args.Flag("synthetic"));

        Console.WriteLine($"presets: {what}, {data.Train.Count} train / {data.Test.Count} test images at {imageSize} px, device {device}, {info.Threads} threads");
        var rows = new List<(string Preset, int Seed, double Accuracy, double Loss, double Seconds, int Warnings)>();
        var run = 0;
        foreach (var preset in presets)
        {
            foreach (var seed in seeds)
            {
                var options = TrainingRecipes.Options(preset, imageSize, seed) with
                {
                    Epochs = args.Int("epochs", preset.Epochs),
                    BatchSize = args.Int("batch", preset.BatchSize),
                    LearningRate = args.Double("lr", preset.LearningRate),
                    Flip = preset.Flip && !args.Flag("no-flip"),
                };
                manual_seed(seed);
                using var network = NetworkArchitectures.Get(preset.Architecture).Create(data.Train.Channels, data.Train.ClassNames.Count);
                using var trainer = new Trainer(network, data, options, device);
                run++;
                using var observer = new RunProgress($"{preset.Name} seed {seed}, run {run}/{presets.Length * seeds.Length}", options.Epochs, data.Train.Count, options.BatchSize);
                var watch = Stopwatch.StartNew();
                string outcome;
                double accuracy = double.NaN, loss = double.NaN;
                var warnings = 0;
                try
                {
                    var metrics = trainer.Run(observer, CancellationToken.None);
                    accuracy = metrics.TestAccuracy;
                    loss = metrics.TrainLoss;
                    var w = TrainingOutcome.Warnings(metrics.Epochs, data.Train.ClassNames.Count);
                    warnings = w.Count;
                    outcome = w.Count == 0 ? "learned" : "WARNING " + w[0];
                }
                catch (TrainingDivergedException ex)
                {
                    outcome = "FAILED " + ex.Message;
                }

                rows.Add((preset.Name, seed, accuracy, loss, watch.Elapsed.TotalSeconds, warnings));
                observer.Dispose(); // clears the live line before the figures
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {preset.Name,-7} seed {seed}: test accuracy {accuracy:F4}, train loss {loss:F4}, {options.Epochs} epochs, batch {options.BatchSize}, {watch.Elapsed.TotalSeconds:F0} s: {outcome}"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| preset | " + string.Join(" | ", seeds.Select(s => $"seed {s}")) + " | mean | seconds per run |");
        Console.WriteLine("| --- | " + string.Join(" | ", seeds.Select(_ => "---")) + " | --- | --- |");
        foreach (var group in rows.GroupBy(r => r.Preset))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {group.Key} | {string.Join(" | ", group.Select(r => r.Accuracy.ToString("F4", CultureInfo.InvariantCulture)))} | {group.Average(r => r.Accuracy):F4} | {group.Average(r => r.Seconds):F0} |"));
        }

        return 0;
    }

    // One run's live line: epoch, batch, images/s and time left (it printed nothing for 21 minutes before).
    private sealed class RunProgress(string phase, int epochs, int trainImages, int batchSize) : ITrainingObserver, IDisposable
    {
        private readonly ProgressLine progress = new(phase, (long)epochs * trainImages, "images");

        public void OnBatch(BatchProgress p) => progress.Report(
            Math.Min((long)epochs * trainImages, ((long)(p.Epoch - 1) * p.Batches + p.Batch) * batchSize),
            string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch}/{epochs} batch {p.Batch}/{p.Batches} loss {p.Loss:F4}"));

        public void OnEpoch(EpochMetrics metrics) => progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"    epoch {metrics.Epoch}: loss {metrics.TrainLoss:F4} test acc {metrics.TestAccuracy:F4} {metrics.ExamplesPerSecond:F1} img/s"));

        public void Dispose() => progress.Dispose();
    }
}
