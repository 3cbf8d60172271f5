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
/// import/export read an architecture's description (<see cref="NetworkArchitecture.Layers"/>); the NiN's two are built here.
/// </summary>
public static class NinLayers
{
    /// <summary>
    /// The layers of a registered architecture (<see cref="NetworkArchitecture.Layers"/>); an unknown name is refused
    /// (<see cref="NetworkArchitectures.Get"/> throws), never read as NiN.
    /// </summary>
    public static IReadOnlyList<NinLayer> For(string architecture, int inputChannels, int classes) =>
        NetworkArchitectures.Get(architecture).Layers(inputChannels, classes);

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

    /// <summary>The feature-map side after <paramref name="layers"/> for a square input of <paramref name="side"/> px; 0 when it vanishes.</summary>
    public static long OutputSide(IEnumerable<NinLayer> layers, long side)
    {
        static long Slide(long n, long k, long s, long p) => n + (2 * p) < k ? 0 : ((n + (2 * p) - k) / s) + 1;
        var n = side;
        foreach (var layer in layers)
        {
            n = layer switch
            {
                ConvLayer c => Slide(n, c.Kernel, c.Stride, c.Padding),
                MaxPoolLayer m => Slide(n, m.Kernel, m.Stride, 0),
                GlobalAveragePoolLayer => Math.Min(n, 1),
                _ => n,
            };
        }

        return n;
    }

    /// <summary>Trainable parameters of a layer description: each convolution's weight and bias, or weight and its BatchNorm's weight and bias.</summary>
    public static long ParameterCount(IEnumerable<NinLayer> layers) =>
        layers.OfType<ConvLayer>().Sum(c => (c.OutChannels * c.InChannels * c.Kernel * c.Kernel) + (c.BatchNormKey is null ? c.OutChannels : 2 * c.OutChannels));

    /// <summary>
    /// A rough upper bound of the bytes one training image needs at <paramref name="side"/> px, from a layer description:
    /// the input and every stage's output kept for the backward pass (a convolution with BatchNorm keeps two), their
    /// gradients and working space (floats of 4 bytes, ×3). Architectures without their own figure use it.
    /// </summary>
    public static long TrainingBytesPerImage(IEnumerable<NinLayer> layers, int side, int inputChannels)
    {
        long Slide(long n, long k, long s, long p) => n + (2 * p) < k ? 0 : ((n + (2 * p) - k) / s) + 1;
        long n = side, channels = inputChannels;
        var floats = channels * n * n;
        foreach (var layer in layers)
        {
            switch (layer)
            {
                case ConvLayer c:
                    n = Slide(n, c.Kernel, c.Stride, c.Padding);
                    channels = c.OutChannels;
                    floats += channels * n * n * (c.BatchNormKey is null ? 1 : 2);
                    break;
                case MaxPoolLayer m:
                    n = Slide(n, m.Kernel, m.Stride, 0);
                    floats += channels * n * n;
                    break;
                case GlobalAveragePoolLayer:
                    n = Math.Min(n, 1);
                    floats += channels;
                    break;
                case ReluLayer or DropoutLayer:
                    floats += channels * n * n;
                    break;
            }
        }

        return floats * 4 * 3;
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
