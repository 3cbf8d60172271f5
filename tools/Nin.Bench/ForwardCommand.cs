using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelMetadata = Nin.Model.Checkpoints.ModelMetadata;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Onnx;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>forward</c>: the raw network only. Images/s for each batch size with W worker threads of T Torch
/// threads each (the serving engine's <c>Serving:Workers</c> and per-pass threads), so its settings can be
/// chosen for the machine. Input: random 28×28 bytes, resized as the engine does. With <c>--precision fp32,int8</c> the
/// same grid runs in ONNX Runtime instead, the network's fp32 export and its int8 model interleaved, with their ratio.
/// </summary>
internal static class ForwardCommand
{
    public static int Run(Args args)
    {
        if (args.Get("precision") is not null)
        {
            return OnnxRun(args);
        }

        var imageSize = args.Int("image-size", 224);
        var seconds = args.Double("seconds", 3);
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu", Threads = args.Int("threads", 0) });
        var architecture = NetworkArchitectures.Get(args.Get("architecture", NetworkArchitectures.NinName));
        Console.WriteLine($"forward bench: {imageSize} px {architecture.Name}, {info.Threads} Torch threads, {Environment.ProcessorCount} cores");
        manual_seed(0);
        using var network = architecture.Create(1, 10);
        network.eval();
        var configs = args.Get("configs", $"1x{info.Threads},{info.Threads}x1").Split(',');
        var batches = args.Get("batches", "1,2,4,8,16,32").Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray();
        double? baseline = null;
        foreach (var config in configs)
        {
            var parts = config.Split('x');
            int workers = int.Parse(parts[0], CultureInfo.InvariantCulture), threads = int.Parse(parts[1], CultureInfo.InvariantCulture);
            foreach (var batch in batches)
            {
                var rate = Measure(network, imageSize, workers, threads, batch, seconds);
                baseline ??= rate;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{workers} worker(s) x {threads} thread(s), batch {batch,3}: {rate,7:F1} images/s, {1000 / rate,6:F2} ms/image, x{rate / baseline.Value:F2} of the first line"));
            }
        }

        return 0;
    }

    /// <summary>The grid in ONNX Runtime: W workers sharing one session of T intra-op threads per precision.</summary>
    private static int OnnxRun(Args args)
    {
        var imageSize = args.Int("image-size", 224);
        var seconds = args.Double("seconds", 3);
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu", Threads = args.Int("threads", 0) });
        var precisions = Int8Bench.Precisions(args);
        var architecture = NetworkArchitectures.Get(args.Get("architecture", NetworkArchitectures.NinName));
        var home = Directory.CreateTempSubdirectory("nin-forward-").FullName;
        try
        {
            manual_seed(0);
            var store = new ModelStore(home);
            ModelVersionInfo version;
            using (var network = architecture.Create(1, 10))
            {
                version = store.Add(network, new ModelMetadata { Name = "forward", ClassNames = BuiltInDatasets.FashionMnist.ClassNames, ImageSize = imageSize, Preprocessing = new PreprocessingInfo() }, activate: false);
            }

            if (precisions.Contains(Int8Bench.Int8))
            {
                Int8Bench.Quantize(args, version, info.Threads);
            }

            Console.WriteLine($"forward bench (ONNX Runtime): {imageSize} px {architecture.Name}, precisions {string.Join(", ", precisions)}, {Environment.ProcessorCount} cores; int8 acceleration: {Int8Acceleration.Current.Describe()}");
            var configs = args.Get("configs", $"1x{info.Threads},{info.Threads}x1").Split(',');
            var batches = args.Get("batches", "1,2,4,8,16,32").Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray();
            foreach (var config in configs)
            {
                var parts = config.Split('x');
                int workers = int.Parse(parts[0], CultureInfo.InvariantCulture), threads = int.Parse(parts[1], CultureInfo.InvariantCulture);
                var sessions = precisions.ToDictionary(p => p, p =>
                {
                    using var options = OnnxSessions.CpuOptions(threads);
                    return new InferenceSession(Int8Bench.ModelFile(version, p), options);
                });
                try
                {
                    foreach (var batch in batches)
                    {
                        // Two alternating rounds per precision, so drift on shared cores falls on both alike.
                        var rates = precisions.ToDictionary(p => p, _ => 0.0);
                        for (var round = 0; round < 2; round++)
                        {
                            foreach (var p in precisions)
                            {
                                rates[p] += MeasureOnnx(sessions[p], imageSize, workers, batch, seconds / 2) / 2;
                            }
                        }

                        var line = string.Join("; ", precisions.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p} {rates[p],7:F1} images/s ({1000 / rates[p],6:F2} ms/image)")));
                        var ratio = rates.Count == 2 ? string.Create(CultureInfo.InvariantCulture, $"; int8 / fp32 x{rates[Int8Bench.Int8] / rates[Int8Bench.Fp32]:F2}") : "";
                        Console.WriteLine($"{workers} worker(s) x {threads} thread(s), batch {batch,3}: {line}{ratio}");
                    }
                }
                finally
                {
                    foreach (var session in sessions.Values)
                    {
                        session.Dispose();
                    }
                }
            }

            return 0;
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    private static double MeasureOnnx(InferenceSession session, int imageSize, int workers, int batch, double seconds)
    {
        var per = imageSize * imageSize;
        var input = session.InputMetadata.Keys.Single();
        var output = session.OutputMetadata.Keys.Single();
        return Workers(workers, batch, seconds, w =>
        {
            var bytes = new byte[784];
            new Random(w).NextBytes(bytes);
            var floats = new float[batch * per];
            return () =>
            {
                for (var i = 0; i < batch; i++)
                {
                    ManagedPreprocess.ToNetworkInput(bytes, 1, 28, 28, imageSize, floats.AsSpan(i * per, per));
                }

                using var value = OrtValue.CreateTensorValueFromMemory(floats, [batch, 1, imageSize, imageSize]);
                using var run = new RunOptions();
                using var outputs = session.Run(run, [input], [value], [output]);
                GC.KeepAlive(outputs[0].GetTensorDataAsSpan<float>().ToArray());
            };
        });
    }

    private static double Measure(ImageClassifier network, int imageSize, int workers, int threads, int batch, double seconds) =>
        Workers(workers, batch, seconds, w =>
        {
            TorchRuntime.UseThreads(threads);
            var bytes = new byte[batch * 784];
            new Random(w).NextBytes(bytes);
            return () =>
            {
                using var scope = NewDisposeScope();
                using var mode = inference_mode();
                var x = Preprocess.ToNetworkInput(tensor(bytes, [batch, 1, 28, 28], ScalarType.Byte), imageSize);
                var probabilities = nn.functional.softmax(network.forward(x), 1).data<float>().ToArray();
                GC.KeepAlive(probabilities);
            };
        });

    /// <summary>
    /// Images/s of <paramref name="workers"/> threads each repeating a pass of <paramref name="batch"/> images for
    /// <paramref name="seconds"/>: <paramref name="prepare"/> runs on each worker's own thread and returns its pass,
    /// which runs 3 times untimed first.
    /// </summary>
    private static double Workers(int workers, int batch, double seconds, Func<int, Action> prepare)
    {
        var count = 0L;
        var start = new Barrier(workers + 1);
        var stopAt = long.MaxValue;
        var runners = Enumerable.Range(0, workers).Select(w => new Thread(() =>
        {
            var once = prepare(w);
            for (var i = 0; i < 3; i++)
            {
                once();
            }

            start.SignalAndWait();
            while (Stopwatch.GetTimestamp() < Volatile.Read(ref stopAt))
            {
                once();
                Interlocked.Add(ref count, batch);
            }
        })).ToList();
        runners.ForEach(t => t.Start());
        start.SignalAndWait();
        var watch = Stopwatch.StartNew();
        Volatile.Write(ref stopAt, Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency));
        runners.ForEach(t => t.Join());
        return Interlocked.Read(ref count) / watch.Elapsed.TotalSeconds;
    }
}
