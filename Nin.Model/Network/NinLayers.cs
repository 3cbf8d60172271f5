namespace Nin.Model.Network;

/// <summary>One stage of a NiN as exporters and weight importers see it.</summary>
public abstract record NinLayer;

/// <summary>
/// A 2-D convolution with a square kernel. <c>Key</c> is its parameter prefix in d2l's <c>nn.Sequential</c>
/// (<c>0.0</c>: weight <c>0.0.weight</c>, bias <c>0.0.bias</c>), <c>OwnKey</c> the same in <see cref="NinNetwork"/>'s
/// state_dict (<c>net.block1.0</c>).
/// </summary>
public sealed record ConvLayer(string Key, string OwnKey, long InChannels, long OutChannels, long Kernel, long Stride, long Padding) : NinLayer;

public sealed record ReluLayer : NinLayer;

public sealed record MaxPoolLayer(long Kernel, long Stride) : NinLayer;

/// <summary>Identity when serving (eval mode).</summary>
public sealed record DropoutLayer(double Probability) : NinLayer;

public sealed record GlobalAveragePoolLayer : NinLayer;

public sealed record FlattenLayer : NinLayer;

/// <summary>
/// The layer sequence of an architecture, in the order a forward pass runs it, with the parameter names
/// PyTorch (d2l) and this project give each convolution. The ONNX exporter and the PyTorch weight
/// import/export read it, so another architecture plugs in by describing its layers here.
/// </summary>
public static class NinLayers
{
    /// <summary>d2l's NiN: <c>nn.Sequential(nin_block(..), MaxPool2d(3, 2), .., Dropout(0.5), nin_block(384, classes, 3, 1, 1), AdaptiveAvgPool2d((1, 1)), Flatten())</c>.</summary>
    public static IReadOnlyList<NinLayer> D2l(int inputChannels, int classes)
    {
        var layers = new List<NinLayer>();
        void Block(int index, string own, long inC, long outC, long k, long s, long p)
        {
            layers.Add(new ConvLayer($"{index}.0", $"net.{own}.0", inC, outC, k, s, p));
            layers.Add(new ReluLayer());
            layers.Add(new ConvLayer($"{index}.2", $"net.{own}.2", outC, outC, 1, 1, 0));
            layers.Add(new ReluLayer());
            layers.Add(new ConvLayer($"{index}.4", $"net.{own}.4", outC, outC, 1, 1, 0));
            layers.Add(new ReluLayer());
        }

        Block(0, "block1", inputChannels, 96, 11, 4, 0);
        layers.Add(new MaxPoolLayer(3, 2));
        Block(2, "block2", 96, 256, 5, 1, 2);
        layers.Add(new MaxPoolLayer(3, 2));
        Block(4, "block3", 256, 384, 3, 1, 1);
        layers.Add(new MaxPoolLayer(3, 2));
        layers.Add(new DropoutLayer(0.5));
        Block(7, "block4", 384, classes, 3, 1, 1);
        layers.Add(new GlobalAveragePoolLayer());
        layers.Add(new FlattenLayer());
        return layers;
    }

    /// <summary>The parameters in order: (d2l key, own key, shape).</summary>
    public static IEnumerable<(string Key, string OwnKey, long[] Shape)> Parameters(IEnumerable<NinLayer> layers)
    {
        foreach (var conv in layers.OfType<ConvLayer>())
        {
            yield return ($"{conv.Key}.weight", $"{conv.OwnKey}.weight", [conv.OutChannels, conv.InChannels, conv.Kernel, conv.Kernel]);
            yield return ($"{conv.Key}.bias", $"{conv.OwnKey}.bias", [conv.OutChannels]);
        }
    }
}
