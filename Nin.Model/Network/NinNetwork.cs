using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nin.Model.Network;

/// <summary>
/// Network in Network (Lin, Chen &amp; Yan, 2013). Without batch norm it is exactly d2l.ai's: four NiN
/// blocks, three max-pools, dropout, and global average pooling in place of fully connected layers
/// (architecture <c>nin</c>). With <c>batchNorm</c> (architecture <c>nin-bn</c>, this project's
/// deviation) every convolution is followed by BatchNorm and the last 1×1 class convolution has no
/// ReLU: in d2l's form a class channel whose ReLU outputs 0 for every input gets no gradient through
/// the global average pooling and never recovers, which is how small own datasets stay at chance.
/// </summary>
public sealed class NinNetwork : ImageClassifier
{
    private readonly Sequential net;

    public NinNetwork(int inputChannels = 1, int classes = 10, bool batchNorm = false)
        : base("NiN", batchNorm ? NetworkArchitectures.NinBnName : NetworkArchitectures.NinName, inputChannels, classes)
    {
        BatchNorm = batchNorm;
        net = Sequential(
            ("block1", NinBlock(inputChannels, 96, kernel: 11, stride: 4, padding: 0, batchNorm)),
            ("pool1", MaxPool2d(3, stride: 2)),
            ("block2", NinBlock(96, 256, kernel: 5, stride: 1, padding: 2, batchNorm)),
            ("pool2", MaxPool2d(3, stride: 2)),
            ("block3", NinBlock(256, 384, kernel: 3, stride: 1, padding: 1, batchNorm)),
            ("pool3", MaxPool2d(3, stride: 2)),
            ("dropout", Dropout(0.5)),
            ("block4", NinBlock(384, classes, kernel: 3, stride: 1, padding: 1, batchNorm, last: batchNorm)),
            ("gap", AdaptiveAvgPool2d(1)),
            ("flatten", Flatten()));
        RegisterComponents();

        // d2l's init_weights: Xavier-uniform for every convolution's weight.
        using (no_grad())
        {
            foreach (var conv in modules().OfType<Conv2d>())
            {
                init.xavier_uniform_(conv.weight);
            }
        }
    }

    /// <summary>
    /// Conv(k) → ReLU → Conv 1×1 → ReLU → Conv 1×1 → ReLU: an MLP slid over every pixel. With batch
    /// norm, each convolution (without bias, BatchNorm has one) is followed by BatchNorm; the last
    /// block of <c>nin-bn</c> ends without ReLU, so its class scores can be negative.
    /// </summary>
    public static Sequential NinBlock(long inChannels, long outChannels, long kernel, long stride, long padding, bool batchNorm = false, bool last = false)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        void Conv(string name, long i, long k, long s, long p)
        {
            layers.Add((name, Conv2d(i, outChannels, k, stride: s, padding: p, bias: !batchNorm)));
            if (batchNorm)
            {
                layers.Add((name + "bn", BatchNorm2d(outChannels)));
            }
        }

        Conv("0", inChannels, kernel, stride, padding);
        layers.Add(("relu0", ReLU()));
        Conv("1", outChannels, 1, 1, 0);
        layers.Add(("relu1", ReLU()));
        Conv("2", outChannels, 1, 1, 0);
        if (!last)
        {
            layers.Add(("relu2", ReLU()));
        }

        return batchNorm ? Sequential(layers) : Sequential(layers.Select(l => l.Item2).ToArray());
    }

    /// <summary>Whether this is <c>nin-bn</c>.</summary>
    public bool BatchNorm { get; }

    public override Tensor forward(Tensor input)
    {
        NinGeometry.EnsureInputShape(input.shape, InputChannels);
        return net.forward(input);
    }

    /// <summary>Runs the layers one by one and reports each stage's output shape (d2l's shape table).</summary>
    public IReadOnlyList<(string Stage, long[] Shape)> TraceShapes(Tensor input)
    {
        NinGeometry.EnsureInputShape(input.shape, InputChannels);
        var shapes = new List<(string, long[])>();
        using var scope = NewDisposeScope();
        var x = input;
        foreach (var (name, layer) in net.named_children())
        {
            x = ((Module<Tensor, Tensor>)layer).forward(x);
            shapes.Add((name, x.shape));
        }

        return shapes;
    }
}
