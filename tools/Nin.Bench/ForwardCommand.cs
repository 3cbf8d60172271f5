using System.Diagnostics;
using System.Globalization;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>forward</c>: the raw network only. Images/s for each batch size with W worker threads of T Torch
/// threads each (the serving engine's <c>Serving:Workers</c> and per-pass threads), so its settings can be
/// chosen for the machine. Input: random 28×28 bytes, resized as the engine does.
/// </summary>
internal static class ForwardCommand
{
    public static int Run(Args args)
    {
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

    private static double Measure(ImageClassifier network, int imageSize, int workers, int threads, int batch, double seconds)
    {
        var count = 0L;
        var start = new Barrier(workers + 1);
        var stopAt = long.MaxValue;
        var runners = Enumerable.Range(0, workers).Select(w => new Thread(() =>
        {
            TorchRuntime.UseThreads(threads);
            var bytes = new byte[batch * 784];
            new Random(w).NextBytes(bytes);
            void Once()
            {
                using var scope = NewDisposeScope();
                using var mode = inference_mode();
                var x = Preprocess.ToNetworkInput(tensor(bytes, [batch, 1, 28, 28], ScalarType.Byte), imageSize);
                var probabilities = nn.functional.softmax(network.forward(x), 1).data<float>().ToArray();
                GC.KeepAlive(probabilities);
            }

            for (var i = 0; i < 3; i++)
            {
                Once();
            }

            start.SignalAndWait();
            while (Stopwatch.GetTimestamp() < Volatile.Read(ref stopAt))
            {
                Once();
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
