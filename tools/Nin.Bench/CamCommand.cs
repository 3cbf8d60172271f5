using System.Globalization;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Explain;
using Nin.Model.Imaging;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Bench;

/// <summary>
/// <c>cam</c>: where a model's class activation maps put their mass on Fashion-MNIST test images, with the service's
/// explainer (<see cref="ClassActivationMaps.Plan(ImageClassifier, int)"/> and <see cref="ClassActivationMaps.Compute"/>)
/// for the predicted class. Each map is resized to the 28×28 original (<see cref="HeatmapOverlay.Resize"/>); the object is
/// the pixels brighter than 25/255. Printed: the median share of the map's mass on the object, on the object dilated by
/// one pixel (3×3), inside the object's bounding box, beside the median share of the image each of those covers (what a
/// uniform map would put there); the share of images with more than half the mass there; the share whose map is denser
/// there than elsewhere; the share whose peak is on the object. Then the same images letterboxed (28 px content centred
/// in a black canvas, 56×56 by default) and sent through the service's own decoding (padded, resized to the native
/// 28×28, then to the network's input): the share of the mass on the content square against the padding; and the same
/// canvases straight to the network at the object's own scale (a 192 px input for 56×56 at 96 px), which the service
/// does not do, to tell padding from a smaller object.
/// Each figure twice: with the map stretched over the image as the overlay draws it, and with each cell placed at the
/// centre of its receptive field (the layers' strides and paddings).
/// </summary>
internal static class CamCommand
{
    private const byte ObjectThreshold = 25;
    private const int Side = 28;

    public static int Run(Args args)
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu", Threads = args.Int("threads", 0) });
        var directory = args.Get("model") ?? ShippedModel()
            ?? throw new ArgumentException("cam needs --model DIR: the shipped default model (Nin.Api/DefaultModel/fashion-mnist) was not found above this folder.");
        var metadata = Checkpoint.ReadMetadata(directory);
        var dataset = BuiltInDatasets.Find(metadata.Recipe?.Dataset ?? BuiltInDatasets.FashionMnist.Name) ?? BuiltInDatasets.FashionMnist;
        if (metadata.InputChannels != 1 || metadata.Preprocessing.NativeWidth != Side || metadata.Preprocessing.NativeHeight != Side)
        {
            throw new ArgumentException($"{directory} is not a 28×28 grey model; cam measures Fashion-MNIST-like models only.");
        }

        var count = args.Int("count", 500);
        var imageSize = args.Int("image-size", metadata.ImageSize);
        var canvas = args.Int("canvas", 2 * Side);
        var batch = args.Int("batch", 25);
        if (count < 1 || batch < 1 || canvas < Side || imageSize < 1)
        {
            throw new ArgumentException("--count and --batch must be positive, --canvas at least 28, --image-size positive.");
        }

        var data = args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data");
        var test = BuiltInDatasets.Load(data, dataset, maxTrain: 1, maxTest: count).Test;
        count = Math.Min(count, test.Count);
        var (network, _) = Checkpoint.Load(directory, CPU);
        using var owned = network;
        network.eval();
        TorchRuntime.UseThreads(info.Threads);
        var plan = ClassActivationMaps.Plan(network, imageSize)
            ?? throw new ArgumentException($"Architecture '{network.Architecture}' does not list its stages: it has no class activation maps.");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cam bench: {metadata.Name} v{metadata.Version} ({metadata.Architecture}) from {directory}, {imageSize} px: {(plan.Method == ClassActivationMaps.Cam ? "CAM" : "Grad-CAM")} at {plan.Layer} ({plan.Width}×{plan.Height}); {count} {dataset.Name} test images, predicted class; {info.Threads} threads"));

        // The letterboxed canvas also straight to the network at the object's own scale (canvas/28 × the input size), as
        // the service would not (it resizes an upload to 28×28 first), to tell padding from a smaller object.
        var keptSize = imageSize * canvas / Side;
        var keptPlan = ClassActivationMaps.Plan(network, keptSize)!;

        // The maps in float64 from a copy, as the service's explainer computes them; the predictions from the float32 network.
        var (explainer, _) = Checkpoint.Load(directory, CPU);
        using var ownedExplainer = explainer;
        explainer.eval();
        explainer.to(ScalarType.Float64);
        var layers = NinLayers.For(metadata.Architecture, metadata.InputChannels, metadata.ClassNames.Count);
        var projections = Projections(layers, plan, imageSize);
        var keptProjections = Projections(layers, keptPlan, keptSize);
        var plain = projections.Select(_ => new List<Measure>(count)).ToArray();
        var boxed = projections.Select(_ => new List<Measure>(count)).ToArray();
        var kept = keptProjections.Select(_ => new List<Measure>(count)).ToArray();
        var content = ContentSquare(canvas);
        using (var progress = new ProgressLine("cam", 3L * count, "images"))
        {
            for (var start = 0; start < count; start += batch)
            {
                var n = Math.Min(batch, count - start);
                var originals = Enumerable.Range(start, n).Select(i => test.Pixels.AsSpan(i * Side * Side, Side * Side).ToArray()).ToArray();
                var labels = Enumerable.Range(start, n).Select(i => (int)test.Labels[i]).ToArray();
                var canvases = originals.Select(o => Canvas(o, canvas)).ToArray();
                var letterboxed = canvases.Select(c => Decode(c, canvas)).ToArray();
                foreach (var (images, into, mask, done, where) in new[] { (originals, plain, (bool[]?)null, start + n, "28×28 test images"), (letterboxed, boxed, content, count + start + n, $"letterboxed in {canvas}×{canvas}") })
                {
                    var (maps, predicted) = Explain(network, explainer, plan, images, Side, imageSize);
                    for (var i = 0; i < n; i++)
                    {
                        for (var p = 0; p < projections.Count; p++)
                        {
                            into[p].Add(Measure.Of(images[i], projections[p].Project(maps[i]), predicted[i], labels[i], mask));
                        }
                    }

                    progress.Report(done, where);
                }

                var (keptMaps, keptPredicted) = Explain(network, explainer, keptPlan, canvases, canvas, keptSize);
                for (var i = 0; i < n; i++)
                {
                    for (var p = 0; p < keptProjections.Count; p++)
                    {
                        kept[p].Add(Measure.Of(letterboxed[i], keptProjections[p].Project(keptMaps[i]), keptPredicted[i], labels[i], content));
                    }
                }

                progress.Report((2L * count) + start + n, $"letterboxed at {keptSize} px");
            }
        }

        for (var p = 0; p < projections.Count; p++)
        {
            Console.WriteLine($"-- {projections[p].Name}:");
            Report(plain[p], boxed[p], canvas, content);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"letterboxed at the object's own scale ({canvas}×{canvas} straight to a {keptSize} px input, not what the service does): {(keptPlan.Method == ClassActivationMaps.Cam ? "CAM" : "Grad-CAM")} at {keptPlan.Layer} ({keptPlan.Width}×{keptPlan.Height})"));
        for (var p = 0; p < keptProjections.Count; p++)
        {
            Console.WriteLine($"-- {keptProjections[p].Name}:");
            ReportBoxed(kept[p], canvas, content, "letterboxed, object at its own scale");
        }

        return 0;
    }

    private static List<(string Name, Func<ActivationMap, float[]> Project)> Projections(IReadOnlyList<NinLayer> layers, ActivationMapPlan plan, int inputSize)
    {
        var projections = new List<(string Name, Func<ActivationMap, float[]> Project)>
        {
            ("map stretched over the image, as the overlay draws it", m => HeatmapOverlay.Resize(m.Values, m.Width, m.Height, Side, Side)),
        };
        if (Geometry.Of(layers, plan.Layer) is { } g)
        {
            projections.Add((string.Create(CultureInfo.InvariantCulture, $"each cell at its receptive field's centre ({g.Stride:0.##} px apart from {g.Offset:0.##} px in the {inputSize} px input)"), m => g.Project(m, inputSize)));
        }

        return projections;
    }

    /// <summary>
    /// Where the cells of a stage's maps look in the input: cell i's receptive field is centred at
    /// <c>Offset + Stride × i</c> px (continuous coordinates, pixel k spanning [k, k+1)), from the layers up to the stage.
    /// </summary>
    private sealed record Geometry(double Stride, double Offset)
    {
        /// <summary>The geometry of the stage <paramref name="layer"/> (its convolutions' own keys start <c>net.{layer}.</c>); null if not found.</summary>
        public static Geometry? Of(IReadOnlyList<NinLayer> layers, string layer)
        {
            var last = -1;
            for (var i = 0; i < layers.Count; i++)
            {
                if (layers[i] is ConvLayer c && c.OwnKey.StartsWith($"net.{layer}.", StringComparison.Ordinal))
                {
                    last = i;
                }
            }

            if (last < 0)
            {
                return null;
            }

            double stride = 1, offset = 0.5;
            foreach (var l in layers.Take(last + 1))
            {
                (long k, long s, long p) = l switch
                {
                    ConvLayer c => (c.Kernel, c.Stride, c.Padding),
                    MaxPoolLayer m => (m.Kernel, m.Stride, 0L),
                    _ => (1L, 1L, 0L),
                };
                offset += stride * (((k - 1) / 2.0) - p);
                stride *= s;
            }

            return new Geometry(stride, offset);
        }

        /// <summary>The map on the 28×28 image: each pixel's centre, in input coordinates, read bilinearly between cell centres (clamped at the edges).</summary>
        public float[] Project(ActivationMap map, int imageSize)
        {
            var result = new float[Side * Side];
            double Cell(int x, int cells) => Math.Clamp((((x + 0.5) * imageSize / Side) - Offset) / Stride, 0, cells - 1);
            for (var y = 0; y < Side; y++)
            {
                var fy = Cell(y, map.Height);
                int y0 = (int)fy, y1 = Math.Min(y0 + 1, map.Height - 1);
                var wy = fy - y0;
                for (var x = 0; x < Side; x++)
                {
                    var fx = Cell(x, map.Width);
                    int x0 = (int)fx, x1 = Math.Min(x0 + 1, map.Width - 1);
                    var wx = fx - x0;
                    var v = map.Values;
                    var top = (v[(y0 * map.Width) + x0] * (1 - wx)) + (v[(y0 * map.Width) + x1] * wx);
                    var bottom = (v[(y1 * map.Width) + x0] * (1 - wx)) + (v[(y1 * map.Width) + x1] * wx);
                    result[(y * Side) + x] = (float)((top * (1 - wy)) + (bottom * wy));
                }
            }

            return result;
        }
    }
    /// <summary>
    /// Maps of the predicted class for native 28×28 images: one forward pass for the predictions, then the float64
    /// explainer on the same input, as the service does (its forward pass may run in ONNX Runtime; the class is the same).
    /// </summary>
    private static (ActivationMap[] Maps, int[] Predicted) Explain(ImageClassifier network, ImageClassifier explainer, ActivationMapPlan plan, byte[][] images, int side, int imageSize)
    {
        using var scope = NewDisposeScope();
        var bytes = images.SelectMany(b => b).ToArray();
        var input = Preprocess.ToNetworkInput(tensor(bytes, [images.Length, 1, side, side], ScalarType.Byte), imageSize);
        int[] predicted;
        using (no_grad())
        {
            predicted = network.forward(input).argmax(1).data<long>().ToArray().Select(p => (int)p).ToArray();
        }

        return (ClassActivationMaps.Compute(explainer, plan, input.to(ScalarType.Float64), predicted), predicted);
    }

    /// <summary>
    /// A canvas as the service sees it when uploaded: encoded as a PNG and decoded by the service's decoder (padded to a
    /// square, resized to the native 28×28).
    /// </summary>
    private static byte[] Decode(byte[] pixels, int canvas)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(canvas, canvas, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return ImageDecoder.Decode(png.ToArray(), 1, Side, Side, lightOnDark: true, InvertMode.False, long.MaxValue).Pixels;
    }

    /// <summary>The 28×28 image centred in a black <paramref name="canvas"/>².</summary>
    private static byte[] Canvas(byte[] original, int canvas)
    {
        var offset = (canvas - Side) / 2;
        var pixels = new byte[canvas * canvas];
        for (var y = 0; y < Side; y++)
        {
            original.AsSpan(y * Side, Side).CopyTo(pixels.AsSpan(((y + offset) * canvas) + offset, Side));
        }

        return pixels;
    }

    /// <summary>Where the content square of a letterboxed canvas lands in the native 28×28 image: a mask.</summary>
    private static bool[] ContentSquare(int canvas)
    {
        var offset = (canvas - Side) / 2;
        var scale = (double)Side / canvas;
        var mask = new bool[Side * Side];
        for (var y = 0; y < Side; y++)
        {
            for (var x = 0; x < Side; x++)
            {
                // The native pixel's centre, in canvas coordinates, lies in the content square.
                double cy = (y + 0.5) / scale, cx = (x + 0.5) / scale;
                mask[(y * Side) + x] = cy >= offset && cy < offset + Side && cx >= offset && cx < offset + Side;
            }
        }

        return mask;
    }

    private static void Report(List<Measure> plain, List<Measure> boxed, int canvas, bool[] content)
    {
        static string P(double v) => v.ToString("P0", CultureInfo.InvariantCulture).Replace(" ", "", StringComparison.Ordinal);
        static double Median(IEnumerable<double> values)
        {
            var v = values.Order().ToArray();
            return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
        }

        static double Share(IReadOnlyCollection<Measure> m, Func<Measure, bool> f) => m.Count == 0 ? double.NaN : (double)m.Count(f) / m.Count;

        var usable = plain.Where(m => m.Mass > 0).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"28×28 test images: {plain.Count} ({plain.Count - usable.Length} with no positive evidence, left out); predicted right {P(Share(plain, m => m.Correct))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  median share of the map's mass: on the object {P(Median(usable.Select(m => m.OnObject)))} (object area {P(Median(usable.Select(m => m.ObjectArea)))}, x{Median(usable.Select(m => m.OnObject / m.ObjectArea)):F2} of a uniform map); on the object dilated by 1 px {P(Median(usable.Select(m => m.OnDilated)))} (area {P(Median(usable.Select(m => m.DilatedArea)))}); in its bounding box {P(Median(usable.Select(m => m.InBox)))} (box area {P(Median(usable.Select(m => m.BoxArea)))})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  images with more than half the mass: on the object {P(Share(usable, m => m.OnObject > 0.5))}, on the dilated object {P(Share(usable, m => m.OnDilated > 0.5))}, in the bounding box {P(Share(usable, m => m.InBox > 0.5))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  images whose map is denser there than elsewhere (a larger share of the mass than of the area): on the object {P(Share(usable, m => m.OnObject > m.ObjectArea))}, on the dilated object {P(Share(usable, m => m.OnDilated > m.DilatedArea))}, in the bounding box {P(Share(usable, m => m.InBox > m.BoxArea))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  peak of the map: on the object {P(Share(usable, m => m.PeakOnObject))}, on the dilated object {P(Share(usable, m => m.PeakOnDilated))}, in the bounding box {P(Share(usable, m => m.PeakInBox))}"));

        ReportBoxed(boxed, canvas, content, "decoded as an upload");
    }

    private static void ReportBoxed(List<Measure> boxed, int canvas, bool[] content, string how)
    {
        static string P(double v) => v.ToString("P0", CultureInfo.InvariantCulture).Replace(" ", "", StringComparison.Ordinal);
        static double Median(IEnumerable<double> values)
        {
            var v = values.Order().ToArray();
            return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
        }

        static double Share(IReadOnlyCollection<Measure> m, Func<Measure, bool> f) => m.Count == 0 ? double.NaN : (double)m.Count(f) / m.Count;

        var boxedUsable = boxed.Where(m => m.Mass > 0).ToArray();
        var area = (double)content.Count(c => c) / content.Length;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"letterboxed (28 px content centred in {canvas}×{canvas}, black padding, {how}): {boxed.Count} ({boxed.Count - boxedUsable.Length} with no positive evidence, left out); predicted right {P(Share(boxed, m => m.Correct))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  median share of the map's mass on the content square {P(Median(boxedUsable.Select(m => m.InContent)))} (its area {P(area)}), on the padding {P(Median(boxedUsable.Select(m => 1 - m.InContent)))}; images with more than half the mass on the content {P(Share(boxedUsable, m => m.InContent > 0.5))}; peak on the content {P(Share(boxedUsable, m => m.PeakInContent))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  median share on the object {P(Median(boxedUsable.Select(m => m.OnObject)))} (area {P(Median(boxedUsable.Select(m => m.ObjectArea)))}), on the dilated object {P(Median(boxedUsable.Select(m => m.OnDilated)))}, in its bounding box {P(Median(boxedUsable.Select(m => m.InBox)))} (area {P(Median(boxedUsable.Select(m => m.BoxArea)))})"));
        var right = boxedUsable.Where(m => m.Correct).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  of the {right.Length} predicted right: median share on the content square {P(Median(right.Select(m => m.InContent)))}; more than half on the content {P(Share(right, m => m.InContent > 0.5))}; peak on the content {P(Share(right, m => m.PeakInContent))}"));
    }

    /// <summary>The candidate folders of the shipped default model: above the working folder and above this program.</summary>
    private static string? ShippedModel()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "Nin.Api", "DefaultModel", "fashion-mnist");
                if (File.Exists(Path.Combine(candidate, "model.json")))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    /// <summary>One image's figures: shares of the map's mass (0–1) and of the image's area.</summary>
    private sealed record Measure(
        double Mass, bool Correct,
        double OnObject, double OnDilated, double InBox, double InContent,
        double ObjectArea, double DilatedArea, double BoxArea,
        bool PeakOnObject, bool PeakOnDilated, bool PeakInBox, bool PeakInContent)
    {
        public static Measure Of(byte[] native, float[] map, int predicted, int label, bool[]? content)
        {
            var obj = native.Select(p => p > ObjectThreshold).ToArray();
            var dilated = new bool[obj.Length];
            int top = Side, bottom = -1, left = Side, right = -1;
            for (var y = 0; y < Side; y++)
            {
                for (var x = 0; x < Side; x++)
                {
                    if (!obj[(y * Side) + x])
                    {
                        continue;
                    }

                    (top, bottom, left, right) = (Math.Min(top, y), Math.Max(bottom, y), Math.Min(left, x), Math.Max(right, x));
                    for (var dy = -1; dy <= 1; dy++)
                    {
                        for (var dx = -1; dx <= 1; dx++)
                        {
                            int yy = y + dy, xx = x + dx;
                            if (yy is >= 0 and < Side && xx is >= 0 and < Side)
                            {
                                dilated[(yy * Side) + xx] = true;
                            }
                        }
                    }
                }
            }

            bool InBoxAt(int p) => p / Side >= top && p / Side <= bottom && p % Side >= left && p % Side <= right;
            double total = 0, onObject = 0, onDilated = 0, inBox = 0, inContent = 0;
            var peak = 0;
            for (var p = 0; p < map.Length; p++)
            {
                var v = Math.Max(0, map[p]);
                total += v;
                onObject += obj[p] ? v : 0;
                onDilated += dilated[p] ? v : 0;
                inBox += InBoxAt(p) ? v : 0;
                inContent += content is not null && content[p] ? v : 0;
                if (map[p] > map[peak])
                {
                    peak = p;
                }
            }

            double Of(double part) => total > 0 ? part / total : 0;
            var pixels = (double)map.Length;
            var boxArea = bottom < 0 ? 0 : (bottom - top + 1) * (right - left + 1) / pixels;
            return new Measure(total, predicted == label,
                Of(onObject), Of(onDilated), Of(inBox), Of(inContent),
                obj.Count(o => o) / pixels, dilated.Count(d => d) / pixels, boxArea,
                obj[peak], dilated[peak], bottom >= 0 && InBoxAt(peak), content is not null && content[peak]);
        }
    }
}
