using Nin.Model.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class NinNetworkTests
{
    [Fact]
    public void Stage_shapes_for_224px_match_d2l()
    {
        using var net = new NinNetwork(inputChannels: 1, classes: 10);
        net.eval();
        using var x = rand(1, 1, 224, 224);

        var shapes = net.TraceShapes(x).Select(s => string.Join("×", s.Shape.Skip(1))).ToArray();

        Assert.Equal(
            ["96×54×54", "96×26×26", "256×26×26", "256×12×12", "384×12×12", "384×5×5", "384×5×5", "10×5×5", "10×1×1", "10"],
            shapes);
    }

    [Fact]
    public void Forward_gives_one_logit_per_class()
    {
        using var net = new NinNetwork(inputChannels: 3, classes: 7);
        net.eval();
        using var _ = no_grad();
        using var x = rand(2, 3, 96, 96);
        using var y = net.forward(x);
        Assert.Equal(new long[] { 2, 7 }, y.shape);
    }

    [Fact]
    public void Parameter_count_for_one_channel_and_ten_classes_is_d2ls()
    {
        using var net = new NinNetwork(1, 10);
        Assert.Equal(1_992_166, net.parameters().Sum(p => p.numel()));
        Assert.Equal(1_992_166, NinGeometry.ParameterCount(1, 10));
    }

    [Fact]
    public void Parameter_count_for_three_channels_and_1000_classes_follows_the_formula()
    {
        // conv k×k: in·out·k² + out; two 1×1 convs: 2·(out² + out).
        static long Block(long i, long o, long k) => (i * o * k * k) + o + (2 * ((o * o) + o));
        var expected = Block(3, 96, 11) + Block(96, 256, 5) + Block(256, 384, 3) + Block(384, 1000, 3);

        using var net = new NinNetwork(3, 1000);
        Assert.Equal(expected, net.parameters().Sum(p => p.numel()));
        Assert.Equal(expected, NinGeometry.ParameterCount(3, 1000));
    }

    [Fact]
    public void Minimum_input_is_67_px_and_smaller_is_refused_before_tensor_work()
    {
        Assert.Equal(67, NinGeometry.MinimumImageSize);
        Assert.Equal(1, NinGeometry.FeatureMapSize(67));
        Assert.Equal(0, NinGeometry.FeatureMapSize(66));

        using var net = new NinNetwork(1, 10);
        using var small = zeros(1, 1, 64, 64);
        var ex = Assert.Throws<ArgumentException>(() => net.forward(small));
        Assert.Contains("67", ex.Message, StringComparison.Ordinal);
        Assert.Contains("64×64", ex.Message, StringComparison.Ordinal);

        var sizeEx = Assert.Throws<ArgumentOutOfRangeException>(() => NinGeometry.EnsureImageSize(64));
        Assert.Contains("at least 67", sizeEx.Message, StringComparison.Ordinal);

        using var ok = zeros(1, 1, 67, 67);
        using var _ = no_grad();
        using var y = net.forward(ok);
        Assert.Equal(new long[] { 1, 10 }, y.shape);
    }

    [Fact]
    public void Wrong_channel_count_is_refused_with_a_clear_message()
    {
        using var net = new NinNetwork(1, 10);
        using var rgb = zeros(1, 3, 96, 96);
        var ex = Assert.Throws<ArgumentException>(() => net.forward(rgb));
        Assert.Contains("1-channel", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Convolution_weights_are_xavier_uniform()
    {
        using var net = new NinNetwork(1, 10);
        var conv = net.modules().OfType<TorchSharp.Modules.Conv2d>().First();
        // Xavier-uniform bound: sqrt(6 / (fan_in + fan_out)), fan = channels · k².
        var bound = Math.Sqrt(6.0 / ((1 * 11 * 11) + (96 * 11 * 11)));
        var max = conv.weight!.abs().max().item<float>();
        Assert.InRange(max, bound * 0.9, bound * 1.0001);
    }
}
