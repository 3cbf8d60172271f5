using System.Diagnostics;
using System.Globalization;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>train</c>: trains the NiN with the service's own training loop and, with <c>--out</c>, saves a
/// checkpoint (this is how the shipped default model is made).
/// </summary>
internal static class TrainCommand
{
    public static int Run(Args args)
    {
        if (args.Get("presets") is not null || args.Flag("synthetic"))
        {
            return PresetComparison.Run(args);
        }

        if (args.Flag("compare-pytorch"))
        {
            return TorchComparison.Run(args);
        }

        var info = TorchRuntime.Initialize(new TorchOptions { Device = args.Get("device", "auto"), Threads = args.Int("threads", 0) });
        var device = TorchRuntime.ResolveDevice(args.Get("device", "auto"));
        var dataDir = args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data");
        var dataset = BuiltInDatasets.Find(args.Get("dataset", "fashion-mnist")) ?? throw new ArgumentException("unknown --dataset");
        var options = new TrainingOptions
        {
            Epochs = args.Int("epochs", 10),
            BatchSize = args.Int("batch", 128),
            LearningRate = args.Double("lr", 0.1),
            Momentum = args.Double("momentum", 0),
            WeightDecay = args.Double("weight-decay", 0),
            ImageSize = args.Int("image-size", 224),
            Seed = args.Int("seed", 0),
        };
        var data = BuiltInDatasets.Load(dataDir, dataset, args.IntOrNull("max-train"), args.IntOrNull("max-test"));
        Console.WriteLine($"train: {dataset.Name} {data.Train.Count}/{data.Test.Count} images, {options}, device {device}, {info.Threads} threads, TorchSharp {info.TorchSharpVersion}");

        var baselineSteps = args.Int("baseline-steps", 0);
        var baseline = baselineSteps > 0 ? SyntheticStepsPerSecond(options, device, baselineSteps) : (double?)null;
        if (baseline is { } b)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"baseline: synthetic training step (random batch already on the device): {b:F1} img/s"));
        }

        // --continue-from DIR: start from a saved model's weights (after its recorded epochs) and train the
        // epochs up to --epochs with this run's learning rate; the optimizer state starts fresh.
        var (resume, continued) = ContinueFrom(args.Get("continue-from"), dataset, options);

        manual_seed(options.Seed);
        using var network = NetworkArchitectures.Get(args.Get("architecture", NetworkArchitectures.NinName)).Create(1, dataset.ClassNames.Count);
        using var trainer = new Trainer(network, data, options, device);
        var phases = args.Flag("breakdown") ? new TrainingPhaseTimes() : null;
        trainer.PhaseTimes = phases;
        var watch = Stopwatch.StartNew();
        using var observer = new ConsoleObserver(resume?.History ?? [], options.Epochs, data.Train.Count, options.BatchSize, $"train {dataset.Name}");
        var outDir = args.Get("out");

        // With --out, the checkpoint is written after every epoch: the lr is constant, so the model after
        // epoch k is exactly what the same recipe with --epochs k gives, and an interrupted run still yields one.
        var metrics = trainer.Run(observer, CancellationToken.None, resume, onEpochEnd: (epoch, _) =>
        {
            if (outDir is not null)
            {
                Save(args, network, dataset, data, options with { Epochs = epoch }, continued, trainer.History, device, outDir);
            }
        });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done: test accuracy {metrics.TestAccuracy:F4}, {metrics.ExamplesPerSecond:F1} img/s, {watch.Elapsed.TotalMinutes:F1} min"));
        if (baseline is { } bl)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"end to end: {metrics.ExamplesPerSecond:F1} img/s = {metrics.ExamplesPerSecond / bl:F2}x of the synthetic baseline ({bl:F1} img/s)"));
        }

        var trained = Math.Max(1, observer.Epochs.Count - (resume?.History.Count ?? 0));
        if (phases is not null)
        {
            Console.WriteLine("breakdown (seconds per epoch): " + TorchComparison.DescribePhases(
                Enum.GetValues<TrainingPhase>().ToDictionary(p => p.ToString().ToLowerInvariant(), p => phases[p].TotalSeconds / trained)));
        }

        // --json FILE: the figures --compare-pytorch reads, named as the PyTorch anchor's --json names them.
        if (args.Get("json") is { } json)
        {
            TorchComparison.WriteResult(json, $"nin (TorchSharp {info.TorchSharpVersion})", device.ToString(), info.Threads, metrics, observer.Epochs, trained, phases);
        }

        using var self = Process.GetCurrentProcess();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"peak memory: process working set {self.PeakWorkingSet64 / (1024.0 * 1024):F0} MiB"));
        return 0;
    }

    /// <summary>The ceiling: forward, backward and SGD step on a random batch that is already on the device.</summary>
    private static double SyntheticStepsPerSecond(TrainingOptions options, Device device, int steps)
    {
        manual_seed(0);
        using var network = NetworkArchitectures.Nin.Create(1, 10);
        network.to(device);
        network.train();
        using var optimizer = optim.SGD(network.parameters(), options.LearningRate);
        using var x = rand(options.BatchSize, 1, options.ImageSize, options.ImageSize, device: device);
        using var y = randint(0, 10, [options.BatchSize], device: device);
        var watch = new Stopwatch();
        for (var i = -2; i < steps; i++)
        {
            if (i == 0)
            {
                watch.Start();
            }

            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(network.forward(x), y);
            loss.backward();
            optimizer.step();
            _ = loss.item<float>();
        }

        return steps * options.BatchSize / watch.Elapsed.TotalSeconds;
    }

    private static (ResumePoint? Resume, ContinuedFrom? Continued) ContinueFrom(string? directory, IdxDatasetInfo dataset, TrainingOptions options)
    {
        if (directory is null)
        {
            return (null, null);
        }

        // Load verifies the weights' hash and shape before anything is trained on them.
        var (probe, source) = Checkpoint.Load(directory);
        probe.Dispose();
        var recipe = source.Recipe ?? throw new ArgumentException($"--continue-from {directory}: the model records no training recipe.");
        var history = source.Metrics?.Epochs ?? [];
        if (recipe.Dataset != dataset.Name || source.ImageSize != options.ImageSize || history.Count != recipe.Epochs)
        {
            throw new ArgumentException(
                $"--continue-from {directory}: that model was trained on {recipe.Dataset} at {source.ImageSize} px for {recipe.Epochs} epoch(s) " +
                $"({history.Count} recorded); this run is {dataset.Name} at {options.ImageSize} px.");
        }

        if (options.Epochs <= recipe.Epochs)
        {
            throw new ArgumentException($"--epochs {options.Epochs} must exceed the {recipe.Epochs} epoch(s) the model already has.");
        }

        // A copy of the weights, so --out may name the same folder.
        var weights = Path.Combine(Path.GetTempPath(), $"nin-continue-{Guid.NewGuid():N}.bin");
        File.Copy(Path.Combine(directory, source.WeightsFile), weights);
        Console.WriteLine($"continuing {source.Name} v{source.Version} after epoch {recipe.Epochs} (test accuracy {source.Metrics?.TestAccuracy:F4}); optimizer state starts fresh");
        var continued = new ContinuedFrom
        {
            Name = source.Name,
            Version = source.Version,
            WeightsSha256 = source.WeightsSha256,
            Epochs = recipe.Epochs,
            Recipe = recipe,
        };
        return (new ResumePoint(recipe.Epochs, history, weights, OptimizerPath: null), continued);
    }

    private static void Save(Args args, ImageClassifier network, IdxDatasetInfo dataset, DatasetSplit data, TrainingOptions options, ContinuedFrom? continued, IReadOnlyList<EpochMetrics> epochs, Device device, string outDir)
    {
        var described = TrainedModel.Describe(args.Get("name", dataset.Name), data, options, epochs, device.ToString());
        var metadata = described with { Version = args.Int("version", 1), Recipe = described.Recipe! with { ContinuedFrom = continued } };
        var saved = Checkpoint.Save(network, metadata, outDir);
        Console.WriteLine($"saved {saved.Name} v{saved.Version} after epoch {options.Epochs} to {Path.GetFullPath(outDir)}");
    }

    private sealed class ConsoleObserver(IEnumerable<EpochMetrics> earlier, int epochs, int trainImages, int batchSize, string phase) : ITrainingObserver, IDisposable
    {
        public List<EpochMetrics> Epochs { get; } = [.. earlier];

        private readonly int firstEpoch = earlier.Count() + 1;
        private ProgressLine? progress;

        public void OnBatch(BatchProgress p)
        {
            var total = (long)Math.Max(0, epochs - firstEpoch + 1) * trainImages;
            progress ??= new ProgressLine(phase, total, "images");
            var done = Math.Min(total, ((long)(p.Epoch - firstEpoch) * p.Batches + p.Batch) * batchSize);
            progress.Report(done, string.Create(CultureInfo.InvariantCulture, $"epoch {p.Epoch}/{epochs} batch {p.Batch}/{p.Batches} loss {p.Loss:F4}"));
        }

        public void OnEpoch(EpochMetrics m)
        {
            Epochs.Add(m);
            var line = string.Create(CultureInfo.InvariantCulture, $"epoch {m.Epoch}: loss {m.TrainLoss:F4} train acc {m.TrainAccuracy:F4} test acc {m.TestAccuracy:F4} {m.ExamplesPerSecond:F1} img/s {m.Seconds:F0} s");
            if (progress is null)
            {
                Console.WriteLine(line);
            }
            else
            {
                progress.WriteLine(line);
            }
        }

        public void Dispose() => progress?.Dispose();
    }
}
