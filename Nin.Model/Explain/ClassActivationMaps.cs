using Nin.Model.Network;
using static TorchSharp.torch;

namespace Nin.Model.Explain;

/// <summary>
/// Where in one image the evidence for a class lies, at the resolution of the layer it was read from: values in 0–1
/// (the layer's map, negative evidence cut to 0, divided by its largest value), row after row.
/// </summary>
/// <param name="Method"><c>cam</c> (the class's own map before global average pooling) or <c>grad-cam</c>.</param>
/// <param name="Layer">The stage the map comes from (e.g. <c>block4</c>, <c>block2</c>).</param>
/// <param name="ClassIndex">The class explained.</param>
/// <param name="Width">Columns of the map.</param>
/// <param name="Height">Rows of the map.</param>
/// <param name="Values">Height×Width values in 0–1, row after row.</param>
/// <param name="Peak">The map's largest value before dividing (0: no positive evidence anywhere, every value 0).</param>
public sealed record ActivationMap(string Method, string Layer, int ClassIndex, int Width, int Height, float[] Values, float Peak);

/// <summary>Which method and stage explain an architecture at one input size.</summary>
/// <param name="Method"><c>cam</c> or <c>grad-cam</c>.</param>
/// <param name="Stage">Index of the stage in <see cref="ImageClassifier.Stages"/>.</param>
/// <param name="Layer">That stage's name.</param>
/// <param name="Width">Columns of its maps.</param>
/// <param name="Height">Rows of its maps.</param>
public sealed record ActivationMapPlan(string Method, int Stage, string Layer, int Width, int Height);

/// <summary>
/// Class activation maps. NiN ends in one map per class and global average pooling, so a class's score is the mean of
/// its map and that map is the CAM (Zhou et al. 2016) with no extra pass. Where that last map is smaller than
/// <see cref="MinimumSide"/> on a side (NiN's class maps are 1×1 at 96 px and 5×5 at 224 px) it says too little, and
/// Grad-CAM (Selvaraju et al. 2017) is read instead at the deepest stage whose output is at least that big: the
/// stage's channels weighted by the spatial mean of the class score's gradient, summed, negatives cut. One forward pass
/// and, for Grad-CAM, one backward pass for the whole batch (images do not interact in eval mode), gradients taken
/// with respect to that stage's output only, so the network's parameters gain no gradients.
/// </summary>
public static class ClassActivationMaps
{
    /// <summary>Smallest side of a map worth showing; smaller class maps send the explanation to an earlier stage.</summary>
    public const int MinimumSide = 7;

    public const string Cam = "cam";
    public const string GradCam = "grad-cam";

    /// <summary>
    /// The method and stage for <paramref name="network"/> at <paramref name="imageSize"/>, from the shapes of one
    /// traced pass of a blank image. Null when the network does not list its stages.
    /// </summary>
    public static ActivationMapPlan? Plan(ImageClassifier network, int imageSize)
    {
        var stages = network.Stages;
        if (stages.Count == 0)
        {
            return null;
        }

        using var scope = NewDisposeScope();
        using var mode = no_grad();
        var device = network.parameters().FirstOrDefault()?.device ?? CPU;
        var x = zeros([1, network.InputChannels, imageSize, imageSize], device: device);
        var shapes = new List<long[]>(stages.Count);
        foreach (var (_, stage) in stages)
        {
            x = stage.forward(x);
            shapes.Add(x.shape);
        }

        return Plan(stages.Select(s => s.Name).ToArray(), shapes, network.Classes);
    }

    /// <summary>The choice itself, from each stage's output shape ([N, C, H, W] for maps, [N, K] for scores).</summary>
    public static ActivationMapPlan? Plan(IReadOnlyList<string> names, IReadOnlyList<long[]> shapes, int classes)
    {
        var maps = Enumerable.Range(0, shapes.Count).Where(i => shapes[i].Length == 4).ToArray();
        if (maps.Length == 0)
        {
            return null;
        }

        // The class maps: the last image-shaped output bigger than 1×1 (global average pooling's own [N, K, 1, 1] is not),
        // one channel per class.
        var spread = maps.Where(i => shapes[i][2] * shapes[i][3] > 1).ToArray();
        var last = spread.Length > 0 ? spread[^1] : maps[^1];
        if (shapes[last][1] == classes && Math.Min(shapes[last][2], shapes[last][3]) >= MinimumSide)
        {
            return new ActivationMapPlan(Cam, last, names[last], (int)shapes[last][3], (int)shapes[last][2]);
        }

        // The deepest stage big enough; at the smallest inputs, where none is, the biggest one (the earliest).
        var big = maps.Where(i => Math.Min(shapes[i][2], shapes[i][3]) >= MinimumSide).ToArray();
        var chosen = big.Length > 0 ? big[^1] : maps.OrderByDescending(i => Math.Min(shapes[i][2], shapes[i][3])).ThenBy(i => i).First();
        return new ActivationMapPlan(GradCam, chosen, names[chosen], (int)shapes[chosen][3], (int)shapes[chosen][2]);
    }

    /// <summary>
    /// The maps of <paramref name="classes"/>[i] for image i of <paramref name="input"/> ([N, C, S, S], preprocessed as
    /// for a forward pass), following <paramref name="plan"/>. The network must be in eval mode and not be trained meanwhile.
    /// </summary>
    public static ActivationMap[] Compute(ImageClassifier network, ActivationMapPlan plan, Tensor input, IReadOnlyList<int> classes)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(classes.Count, (int)input.shape[0]);
        foreach (var c in classes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(c);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(c, network.Classes);
        }

        var stages = network.Stages;
        using var scope = NewDisposeScope();
        using var grad = enable_grad(plan.Method == GradCam);
        var n = classes.Count;
        var x = input;
        Tensor? layer = null;
        for (var i = 0; i < stages.Count; i++)
        {
            x = stages[i].Stage.forward(x);
            if (i == plan.Stage)
            {
                layer = x;
                if (plan.Method == Cam)
                {
                    break; // the class maps are the answer: the pooling after them changes nothing
                }
            }
        }

        if (layer is null)
        {
            throw new InvalidOperationException($"The network has no stage {plan.Stage} ({plan.Layer}).");
        }

        var index = tensor(classes.Select(c => (long)c).ToArray(), device: input.device);
        Tensor maps;
        if (plan.Method == Cam)
        {
            maps = layer.gather(1, index.view(-1, 1, 1, 1).expand(-1, 1, layer.shape[2], layer.shape[3])).squeeze(1); // [N, H, W]: image i's map of its class
        }
        else
        {
            var score = x.gather(1, index.unsqueeze(1)).sum();
            var gradient = autograd.grad([score], [layer])[0];
            var weights = gradient.mean([2, 3], keepdim: true); // [N, C, 1, 1]
            maps = (weights * layer).sum(1).detach(); // [N, H, W]
        }

        maps = maps.detach().relu().to(ScalarType.Float32).cpu().contiguous();
        var values = maps.data<float>().ToArray();
        int h = (int)maps.shape[1], w = (int)maps.shape[2];
        var result = new ActivationMap[n];
        for (var i = 0; i < n; i++)
        {
            var map = values.AsSpan(i * h * w, h * w).ToArray();
            var peak = 0f;
            foreach (var v in map)
            {
                peak = Math.Max(peak, v);
            }

            if (peak > 0)
            {
                for (var j = 0; j < map.Length; j++)
                {
                    map[j] /= peak;
                }
            }

            result[i] = new ActivationMap(plan.Method, plan.Layer, classes[i], w, h, map, peak);
        }

        return result;
    }
}
