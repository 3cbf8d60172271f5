using static TorchSharp.torch;

namespace Nin.Model.Network;

/// <summary>One named parameter as plain data: its shape and its values in row-major order.</summary>
public sealed record NamedTensor(string Name, long[] Shape, float[] Values);

/// <summary>
/// A network's parameters under its layer description's names (d2l's PyTorch names <c>0.0.weight</c> … <c>7.4.bias</c>
/// for <c>nin</c>), in layer order: the common currency of the ONNX exporter and the PyTorch/safetensors import and export.
/// </summary>
public static class NinWeights
{
    /// <summary>BatchNorm2d's default epsilon (PyTorch's and TorchSharp's).</summary>
    public const double BatchNormEpsilon = 1e-5;

    /// <summary>
    /// Copies a network's parameters (on any device) to managed arrays. A convolution followed by BatchNorm comes out
    /// folded with its running statistics (eval mode): weight·γ/√(var+ε) and β − mean·γ/√(var+ε).
    /// </summary>
    public static IReadOnlyList<NamedTensor> Read(ImageClassifier network)
    {
        var own = network.state_dict();
        var result = new List<NamedTensor>();
        using var scope = NewDisposeScope();
        Tensor Get(string key) => own.TryGetValue(key, out var t)
            ? t.detach().cpu().to_type(ScalarType.Float64)
            : throw new InvalidOperationException($"The network has no parameter '{key}'.");

        foreach (var conv in NetworkArchitectures.Get(network.Architecture).Layers(network.InputChannels, network.Classes).OfType<ConvLayer>())
        {
            long[] shape = [conv.OutChannels, conv.InChannels, conv.Kernel, conv.Kernel];
            var weight = Get($"{conv.OwnKey}.weight");
            if (!weight.shape.SequenceEqual(shape))
            {
                throw new InvalidOperationException($"Parameter '{conv.OwnKey}.weight' has shape [{string.Join(", ", weight.shape)}], not [{string.Join(", ", shape)}].");
            }

            Tensor bias;
            if (conv.BatchNormKey is { } bn)
            {
                var scale = Get($"{bn}.weight") / (Get($"{bn}.running_var") + BatchNormEpsilon).sqrt();
                weight = weight * scale.reshape(-1, 1, 1, 1);
                bias = Get($"{bn}.bias") - (Get($"{bn}.running_mean") * scale);
            }
            else
            {
                bias = Get($"{conv.OwnKey}.bias");
            }

            result.Add(new NamedTensor($"{conv.Key}.weight", shape, weight.to_type(ScalarType.Float32).contiguous().data<float>().ToArray()));
            result.Add(new NamedTensor($"{conv.Key}.bias", [conv.OutChannels], bias.to_type(ScalarType.Float32).contiguous().data<float>().ToArray()));
        }

        return result;
    }

    /// <summary>
    /// Copies parameters named by the architecture's layer keys (d2l's for <c>nin</c>) into a network whose architecture
    /// exchanges its weights with PyTorch (<see cref="NetworkArchitecture.PyTorchWeights"/>; same shapes, checked).
    /// </summary>
    public static void Write(ImageClassifier network, IReadOnlyList<NamedTensor> weights)
    {
        var architecture = NetworkArchitectures.Get(network.Architecture);
        if (!architecture.PyTorchWeights)
        {
            throw new ArgumentException($"'{architecture.Name}' networks take no PyTorch weights (only {string.Join(", ", NetworkArchitectures.All.Where(a => a.PyTorchWeights).Select(a => $"'{a.Name}'"))} do).", nameof(network));
        }

        var layers = architecture.Layers(network.InputChannels, network.Classes);
        if (layers.OfType<ConvLayer>().Any(c => c.BatchNormKey is not null))
        {
            throw new ArgumentException($"'{architecture.Name}' has BatchNorm layers, which exported weights hold folded; they cannot be written back.", nameof(network));
        }

        var own = network.state_dict();
        var byKey = weights.ToDictionary(w => w.Name, StringComparer.Ordinal);
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        foreach (var (key, ownKey, shape) in NinLayers.Parameters(layers))
        {
            var w = byKey[key];
            if (!w.Shape.SequenceEqual(shape))
            {
                throw new ArgumentException($"'{key}' has shape [{string.Join(", ", w.Shape)}]; the network needs [{string.Join(", ", shape)}].");
            }

            own[ownKey].copy_(tensor(w.Values, shape));
        }
    }
}
