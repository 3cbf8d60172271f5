using System.Diagnostics;
using System.Globalization;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>quantize</c>: makes a model's int8 model with the service's quantizer and prints fp32 against int8 on its whole
/// test split (accuracy, agreement, largest probability difference) and their raw speed, interleaved.
/// <c>--model DIR</c> quantizes a checkpoint folder in place, on its recipe's built-in dataset (this is how the shipped
/// model's int8 file and record are made); <c>--synthetic</c> first trains a NiN on the synthetic shapes (the robust
/// preset, in a throwaway folder) and quantizes that.
/// </summary>
internal static class QuantizeCommand
{
    public static int Run(Args args)
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu", Threads = args.Int("threads", 0) });
        var options = new Int8Options
        {
            CalibrationImages = args.Int("calibration", new Int8Options().CalibrationImages),
            MarginPoints = args.Double("margin", new Int8Options().MarginPoints),
            Seed = args.Int("seed", 0),
            Threads = info.Threads,
        };
        string directory;
        DatasetSplit data;
        string? throwaway = null;
        if (args.Flag("synthetic"))
        {
            throwaway = Directory.CreateTempSubdirectory("nin-quantize-").FullName;
            (directory, data) = TrainOnShapes(args, throwaway);
        }
        else
        {
            directory = args.Get("model") ?? throw new ArgumentException("quantize needs --model DIR (a checkpoint folder) or --synthetic.");
            var metadata = Checkpoint.ReadMetadata(directory);
            var dataset = BuiltInDatasets.Find(metadata.Recipe?.Dataset ?? "")
                ?? throw new ArgumentException($"{directory} was trained on '{metadata.Recipe?.Dataset}', not a built-in dataset this command loads.");
            data = BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), dataset, null, args.IntOrNull("max-test"));
        }

        try
        {
            var metadata = Checkpoint.ReadMetadata(directory);
            Console.WriteLine($"quantize: {metadata.Name} v{metadata.Version} ({metadata.Architecture}, {metadata.ImageSize} px), calibration {options.CalibrationImages} of {data.Train.Count} training images (seed {options.Seed}), test {data.Test.Count} images, {info.Threads} threads; int8 acceleration: {Int8Acceleration.Current.Describe()}");
            var record = Int8Cache.Prepare(directory, data.Train, data.Test, options);
            var a = record.Accuracy!;
            var (servable, warning) = record.Assess(options.MarginPoints);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"accuracy on {a.TestImages} test images: fp32 {a.Fp32:F4}, int8 {a.Int8:F4} (fp32 - int8 = {a.DropPoints:F2} points; margin {options.MarginPoints:F2}); top-1 agreement {a.Agreement:P2}; largest probability difference {a.MaxProbabilityDifference:F4}"));
            Console.WriteLine(servable ? $"int8 serves ({record.File}, {record.FileBytes / 1024.0 / 1024:F1} MiB, {record.Seconds:F1} s)" : warning);
            Speed(args, directory, record, data.Test, metadata, info.Threads);
            return servable ? 0 : 1;
        }
        finally
        {
            if (throwaway is not null)
            {
                Directory.Delete(throwaway, recursive: true);
            }
        }
    }

    /// <summary>Raw ONNX Runtime passes of both files on a test image (1 image and a batch), interleaved over rounds.</summary>
    private static void Speed(Args args, string directory, Int8Record record, ImageDataset test, ModelMetadata metadata, int threads)
    {
        var pixels = test.Pixels.AsSpan(0, test.Channels * test.Height * test.Width).ToArray();
        using var fp32 = new RawOnnx(OnnxCache.Ensure(directory), metadata.ImageSize, threads, pixels, spinning: false, test.Channels, test.Height, test.Width);
        using var int8 = new RawOnnx(Path.Combine(directory, record.File), metadata.ImageSize, threads, pixels, spinning: false, test.Channels, test.Height, test.Width);
        var batch = args.Int("batch", 16);
        var slice = args.Double("seconds", 6) / 3;
        List<double> fs = [], fb = [], qs = [], qb = [];
        foreach (var runner in new[] { fp32, int8 })
        {
            runner.Time(1, 0.3);
            runner.Time(batch, 0.3);
        }

        for (var round = 0; round < 3; round++)
        {
            fs.AddRange(fp32.Time(1, slice));
            qs.AddRange(int8.Time(1, slice));
            fb.AddRange(fp32.Time(batch, slice));
            qb.AddRange(int8.Time(batch, slice));
        }

        static double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"raw onnxruntime at {metadata.ImageSize} px, 1 image: fp32 {Median(fs):F2} ms, int8 {Median(qs):F2} ms (x{Median(fs) / Median(qs):F2}); batch {batch}: fp32 {1000 / Median(fb):F0} images/s, int8 {1000 / Median(qb):F0} images/s (x{Median(fb) / Median(qb):F2})"));
    }

    private static (string Directory, DatasetSplit Data) TrainOnShapes(Args args, string home)
    {
        var classes = args.Int("classes", 4);
        var perClass = args.Int("per-class", 100);
        var data = SyntheticShapes.Generate(classes, perClass, args.Int("stored-size", 32), args.Int("data-seed", 7));
        var preset = TrainingRecipes.Find(args.Get("preset", TrainingRecipes.RobustName)) ?? throw new ArgumentException("unknown --preset");
        var seed = args.Int("train-seed", 1);
        var imageSize = args.Int("image-size", NetworkArchitectures.Get(preset.Architecture).MinInputSize);
        var options = TrainingRecipes.Options(preset, imageSize, seed) with { Epochs = args.Int("epochs", preset.Epochs) };
        manual_seed(seed);
        using var network = NetworkArchitectures.Get(preset.Architecture).Create(data.Train.Channels, data.Train.ClassNames.Count);
        using var trainer = new Trainer(network, data, options, CPU);
        var watch = Stopwatch.StartNew();
        var metrics = trainer.Run(new Quiet(), CancellationToken.None);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trained {preset.Name} on synthetic shapes ({classes} classes x {perClass}, {data.Train.Count} train / {data.Test.Count} test, {imageSize} px) for {options.Epochs} epochs in {watch.Elapsed.TotalSeconds:F0} s: test accuracy {metrics.TestAccuracy:F4}"));
        var metadata = TrainedModel.Describe("shapes", data, options, metrics.Epochs, "cpu");
        var directory = Path.Combine(home, "shapes");
        Checkpoint.Save(network, metadata with { Version = 1 }, directory);
        return (directory, data);
    }

    private sealed class Quiet : ITrainingObserver
    {
        public void OnBatch(BatchProgress progress)
        {
        }

        public void OnEpoch(EpochMetrics metrics)
        {
        }
    }
}
