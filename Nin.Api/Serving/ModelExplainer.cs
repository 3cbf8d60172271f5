using Nin.Model.Checkpoints;
using Nin.Model.Explain;
using Nin.Model.Network;
using Nin.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Serving;

/// <summary>A class activation map of one image: the map's numbers and the image with the map drawn over it.</summary>
/// <param name="Method"><c>cam</c> (the class's own map) or <c>grad-cam</c> (at <paramref name="Layer"/>).</param>
/// <param name="Layer">The network stage the map was read from.</param>
/// <param name="Index">The class explained (the prediction's, unless another was asked for).</param>
/// <param name="Label">Its name.</param>
/// <param name="Width">Columns of <paramref name="Values"/>.</param>
/// <param name="Height">Rows of <paramref name="Values"/>.</param>
/// <param name="Values">Evidence per cell, 0–1 (1: the strongest), row after row.</param>
/// <param name="Peak">The strongest evidence before scaling to 1 (0: none anywhere; every value is 0).</param>
/// <param name="OverlayPng">The network's input image (after preprocessing) with the map over it, PNG, base64.</param>
public sealed record Explanation(string Method, string Layer, int Index, string Label, int Width, int Height, float[] Values, float Peak, string OverlayPng);

/// <summary>
/// Class activation maps for served versions (<c>explain=cam</c>). They need gradients, which ONNX Runtime does not
/// give, so each explained version is loaded once more with TorchSharp, in eval mode, its own instance (never the one
/// being trained, never the one serving): the last two used stay loaded. One explanation runs at a time, on the
/// request's thread with one Torch thread, in one dispose scope, after the request's own forward pass: a forward pass
/// and, for Grad-CAM, one backward pass per request.
/// </summary>
public sealed class ModelExplainer(ModelStore store) : IDisposable
{
    private const int Kept = 2;
    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly List<(string Key, ImageClassifier Network, ActivationMapPlan? Plan)> loaded = [];

    /// <summary>Maps of <paramref name="classes"/>[i] for input i of <paramref name="model"/>.</summary>
    public async Task<Explanation[]> ExplainAsync(LoadedModel model, IReadOnlyList<InferenceInput> inputs, IReadOnlyList<int> classes, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            return Explain(model, inputs, classes);
        }
        finally
        {
            gate.Release();
        }
    }

    private Explanation[] Explain(LoadedModel model, IReadOnlyList<InferenceInput> inputs, IReadOnlyList<int> classes)
    {
        var (network, plan) = Network(model);
        if (plan is null)
        {
            throw InferenceErrors.BadRequest($"Architecture '{network.Architecture}' does not list its stages: it has no class activation maps.");
        }

        TorchRuntime.UseThreads(1);
        var meta = model.Metadata;
        using var scope = NewDisposeScope();
        var input = TorchModelRunner.InputTensor(inputs, meta, CPU);
        var maps = ClassActivationMaps.Compute(network, plan, input.to(ScalarType.Float64), classes);
        var pixels = input.contiguous().data<float>().ToArray();
        var per = meta.InputChannels * meta.ImageSize * meta.ImageSize;
        var result = new Explanation[maps.Length];
        for (var i = 0; i < maps.Length; i++)
        {
            var map = maps[i];
            var png = HeatmapOverlay.Png(pixels.AsSpan(i * per, per), meta.InputChannels, meta.ImageSize, map);
            result[i] = new Explanation(map.Method, map.Layer, map.ClassIndex, meta.ClassNames[map.ClassIndex], map.Width, map.Height, map.Values, map.Peak, Convert.ToBase64String(png));
        }

        return result;
    }

    /// <summary>The version's TorchSharp network and plan, loaded on first use; the least recently used beyond two goes.</summary>
    private (ImageClassifier Network, ActivationMapPlan? Plan) Network(LoadedModel model)
    {
        var info = store.Find(model.Name, model.Version) ?? throw InferenceErrors.UnknownModel(model.Name, model.Version);
        var key = info.Directory;
        var at = loaded.FindIndex(l => l.Key == key);
        if (at >= 0)
        {
            var hit = loaded[at];
            loaded.RemoveAt(at);
            loaded.Add(hit);
            return (hit.Network, hit.Plan);
        }

        // In float64: Grad-CAM sums many products that nearly cancel, and in float32 an AMD EPYC host's convolutions
        // (oneDNN) moved the 224 px maps to Pearson 0.80-0.89 of the exact ones while Intel hosts matched them; float64
        // gives the same maps on every CPU. The prediction the map explains is still the served one.
        var (network, _) = Checkpoint.Load(info.Directory, CPU);
        network.eval();
        var plan = ClassActivationMaps.Plan(network, model.Metadata.ImageSize); // its probe pass is in float32
        network.to(ScalarType.Float64);
        loaded.Add((key, network, plan));
        while (loaded.Count > Kept)
        {
            loaded[0].Network.Dispose();
            loaded.RemoveAt(0);
        }

        return (network, plan);
    }

    public void Dispose()
    {
        foreach (var (_, network, _) in loaded)
        {
            network.Dispose();
        }

        loaded.Clear();
        gate.Dispose();
    }
}
