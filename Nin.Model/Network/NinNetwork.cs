using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nin.Model.Network;

/// <summary>
/// Network in Network (Lin, Chen &amp; Yan, 2013), exactly as d2l.ai builds it: four NiN blocks,
/// three max-pools, dropout, and global average pooling in place of fully connected layers.
/// </summary>
public sealed class NinNetwork : Module<Tensor, Tensor>
{
    private readonly Sequential net;

    public NinNetwork(int inputChannels = 1, int classes = 10) : base("NiN")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        InputChannels = inputChannels;
        Classes = classes;

        net = Sequential(
            ("block1", NinBlock(inputChannels, 96, kernel: 11, stride: 4, padding: 0)),
            ("pool1", MaxPool2d(3, stride: 2)),
            ("block2", NinBlock(96, 256, kernel: 5, stride: 1, padding: 2)),
            ("pool2", MaxPool2d(3, stride: 2)),
            ("block3", NinBlock(256, 384, kernel: 3, stride: 1, padding: 1)),
            ("pool3", MaxPool2d(3, stride: 2)),
            ("dropout", Dropout(0.5)),
            ("block4", NinBlock(384, classes, kernel: 3, stride: 1, padding: 1)),
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

    /// <summary>Conv(k) → ReLU → Conv 1×1 → ReLU → Conv 1×1 → ReLU: an MLP slid over every pixel.</summary>
    public static Sequential NinBlock(long inChannels, long outChannels, long kernel, long stride, long padding) =>
        Sequential(
            Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding), ReLU(),
            Conv2d(outChannels, outChannels, 1), ReLU(),
            Conv2d(outChannels, outChannels, 1), ReLU());

    public int InputChannels { get; }

    public int Classes { get; }

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
