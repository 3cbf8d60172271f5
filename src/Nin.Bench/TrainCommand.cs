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

        manual_seed(options.Seed);
        using var network = new NinNetwork(1, dataset.ClassNames.Count);
        using var trainer = new Trainer(network, data, options, device);
        var watch = Stopwatch.StartNew();
        var metrics = trainer.Run(new ConsoleObserver(), CancellationToken.None);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done: test accuracy {metrics.TestAccuracy:F4}, {metrics.ExamplesPerSecond:F1} img/s, {watch.Elapsed.TotalMinutes:F1} min"));

        if (args.Get("out") is { } outDir)
        {
            network.to(CPU);
            var saved = Checkpoint.Save(network, new ModelMetadata
            {
                Name = args.Get("name", dataset.Name),
                Version = args.Int("version", 1),
                ClassNames = dataset.ClassNames,
                ImageSize = options.ImageSize,
                Preprocessing = new PreprocessingInfo { Channels = 1, NativeWidth = data.Train.Width, NativeHeight = data.Train.Height },
                Recipe = new TrainingRecipe
                {
                    Dataset = dataset.Name,
                    Epochs = options.Epochs,
                    BatchSize = options.BatchSize,
                    LearningRate = options.LearningRate,
                    Momentum = options.Momentum,
                    WeightDecay = options.WeightDecay,
                    Seed = options.Seed,
                    TrainImages = data.Train.Count,
                    TestImages = data.Test.Count,
                },
                Metrics = metrics,
                TrainedOn = device.ToString(),
            }, outDir);
            Console.WriteLine($"saved {saved.Name} v{saved.Version} to {Path.GetFullPath(outDir)}");
        }

        return 0;
    }

    private sealed class ConsoleObserver : ITrainingObserver
    {
        private DateTime last = DateTime.MinValue;

        public void OnBatch(BatchProgress p)
        {
            if (DateTime.UtcNow - last > TimeSpan.FromSeconds(30))
            {
                last = DateTime.UtcNow;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  epoch {p.Epoch} batch {p.Batch}/{p.Batches} loss {p.Loss:F4}"));
            }
        }

        public void OnEpoch(EpochMetrics m) =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {m.Epoch}: loss {m.TrainLoss:F4} train acc {m.TrainAccuracy:F4} test acc {m.TestAccuracy:F4} {m.ExamplesPerSecond:F1} img/s {m.Seconds:F0} s"));
    }
}
