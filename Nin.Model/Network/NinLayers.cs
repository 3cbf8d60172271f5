namespace Nin.Model.Network;

/// <summary>One stage of a NiN as exporters and weight importers see it.</summary>
public abstract record NinLayer;

/// <summary>
/// A 2-D convolution with a square kernel. <c>Key</c> is its parameter prefix in d2l's <c>nn.Sequential</c>
/// (<c>0.0</c>: weight <c>0.0.weight</c>, bias <c>0.0.bias</c>), <c>OwnKey</c> the same in <see cref="NinNetwork"/>'s
/// state_dict (<c>net.block1.0</c>). With <c>BatchNormKey</c> the convolution has no bias and that BatchNorm follows it
/// (<c>nin-bn</c>): exporters fold the two into one convolution with a bias.
/// </summary>
public sealed record ConvLayer(string Key, string OwnKey, long InChannels, long OutChannels, long Kernel, long Stride, long Padding, string? BatchNormKey = null) : NinLayer;

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
    /// <summary>The layers of a registered architecture (<see cref="NetworkArchitectures"/>).</summary>
    public static IReadOnlyList<NinLayer> For(string architecture, int inputChannels, int classes)
    {
        var known = NetworkArchitectures.Get(architecture);
        return known == NetworkArchitectures.NinBn ? BatchNormed(inputChannels, classes) : D2l(inputChannels, classes);
    }

    /// <summary>d2l's NiN: <c>nn.Sequential(nin_block(..), MaxPool2d(3, 2), .., Dropout(0.5), nin_block(384, classes, 3, 1, 1), AdaptiveAvgPool2d((1, 1)), Flatten())</c>.</summary>
    public static IReadOnlyList<NinLayer> D2l(int inputChannels, int classes) => Build(inputChannels, classes, batchNorm: false);

    /// <summary><c>nin-bn</c>: BatchNorm after every convolution, no ReLU after the class convolution; keys are this project's own.</summary>
    public static IReadOnlyList<NinLayer> BatchNormed(int inputChannels, int classes) => Build(inputChannels, classes, batchNorm: true);

    private static List<NinLayer> Build(int inputChannels, int classes, bool batchNorm)
    {
        var layers = new List<NinLayer>();
        void Block(int index, string own, long inC, long outC, long k, long s, long p, bool last = false)
        {
            ConvLayer Conv(int i, long input, long kernel, long stride, long padding) => batchNorm
                ? new ConvLayer($"{own}.{i}", $"net.{own}.{i}", input, outC, kernel, stride, padding, $"net.{own}.{i}bn")
                : new ConvLayer($"{index}.{2 * i}", $"net.{own}.{2 * i}", input, outC, kernel, stride, padding);

            layers.Add(Conv(0, inC, k, s, p));
            layers.Add(new ReluLayer());
            layers.Add(Conv(1, outC, 1, 1, 0));
            layers.Add(new ReluLayer());
            layers.Add(Conv(2, outC, 1, 1, 0));
            if (!(batchNorm && last))
            {
                layers.Add(new ReluLayer());
            }
        }

        Block(0, "block1", inputChannels, 96, 11, 4, 0);
        layers.Add(new MaxPoolLayer(3, 2));
        Block(2, "block2", 96, 256, 5, 1, 2);
        layers.Add(new MaxPoolLayer(3, 2));
        Block(4, "block3", 256, 384, 3, 1, 1);
        layers.Add(new MaxPoolLayer(3, 2));
        layers.Add(new DropoutLayer(0.5));
        Block(7, "block4", 384, classes, 3, 1, 1, last: true);
        layers.Add(new GlobalAveragePoolLayer());
        layers.Add(new FlattenLayer());
        return layers;
    }

    /// <summary>The parameters in order (as exported: BatchNorm folded, so every convolution has a bias): (key, own key, shape).</summary>
    public static IEnumerable<(string Key, string OwnKey, long[] Shape)> Parameters(IEnumerable<NinLayer> layers)
    {
        foreach (var conv in layers.OfType<ConvLayer>())
        {
            yield return ($"{conv.Key}.weight", $"{conv.OwnKey}.weight", [conv.OutChannels, conv.InChannels, conv.Kernel, conv.Kernel]);
            yield return ($"{conv.Key}.bias", $"{conv.OwnKey}.bias", [conv.OutChannels]);
        }
    }
}
