using static TorchSharp.torch;

namespace Nin.Model.Network;

/// <summary>One named parameter as plain data: its shape and its values in row-major order.</summary>
public sealed record NamedTensor(string Name, long[] Shape, float[] Values);

/// <summary>
/// A network's parameters under d2l's PyTorch names (<c>0.0.weight</c> … <c>7.4.bias</c>), in layer order:
/// the common currency of the ONNX exporter and the PyTorch/safetensors import and export.
/// </summary>
public static class NinWeights
{
    /// <summary>Copies a network's parameters (on any device) to managed arrays, named as d2l names them.</summary>
    public static IReadOnlyList<NamedTensor> Read(NinNetwork network)
    {
        var own = network.state_dict();
        var result = new List<NamedTensor>();
        using var scope = NewDisposeScope();
        foreach (var (key, ownKey, shape) in NinLayers.Parameters(NinLayers.D2l(network.InputChannels, network.Classes)))
        {
            if (!own.TryGetValue(ownKey, out var tensor))
            {
                throw new InvalidOperationException($"The network has no parameter '{ownKey}'.");
            }

            if (!tensor.shape.SequenceEqual(shape))
            {
                throw new InvalidOperationException($"Parameter '{ownKey}' has shape [{string.Join(", ", tensor.shape)}], not [{string.Join(", ", shape)}].");
            }

            result.Add(new NamedTensor(key, shape, tensor.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray()));
        }

        return result;
    }

    /// <summary>Copies parameters named as d2l names them into a network (same shapes, checked).</summary>
    public static void Write(NinNetwork network, IReadOnlyList<NamedTensor> weights)
    {
        var own = network.state_dict();
        var byKey = weights.ToDictionary(w => w.Name, StringComparer.Ordinal);
        using var scope = NewDisposeScope();
        using var grad = no_grad();
        foreach (var (key, ownKey, shape) in NinLayers.Parameters(NinLayers.D2l(network.InputChannels, network.Classes)))
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
