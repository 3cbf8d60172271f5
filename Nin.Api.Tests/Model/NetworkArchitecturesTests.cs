using Nin.Model.Checkpoints;
using Nin.Model.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class NetworkArchitecturesTests
{
    [Fact]
    public void Nin_is_d2ls_network_with_its_parameter_count()
    {
        var nin = NetworkArchitectures.Get("nin");
        using var net = nin.Create(1, 10);
        Assert.Equal("nin", net.Architecture);
        Assert.Equal(1_992_166, net.parameters().Sum(p => p.numel()));
        Assert.Equal(1_992_166, nin.ParameterCount(1, 10));
        Assert.Empty(net.modules().OfType<TorchSharp.Modules.BatchNorm2d>());
        Assert.Equal(67, nin.MinInputSize);
    }

    [Fact]
    public void Older_model_files_name_the_nin_nin_d2l()
    {
        Assert.Same(NetworkArchitectures.Nin, NetworkArchitectures.Find("nin-d2l"));
        Assert.Null(NetworkArchitectures.Find("resnet"));
        var ex = Assert.Throws<ArgumentException>(() => NetworkArchitectures.Get("resnet"));
        Assert.Contains("nin, nin-bn", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(3, 3)]
    public void Nin_bn_has_batch_norm_after_every_convolution_and_its_parameters_match_the_registry(int channels, int classes)
    {
        var arch = NetworkArchitectures.Get("nin-bn");
        using var net = arch.Create(channels, classes);
        Assert.Equal("nin-bn", net.Architecture);
        var convs = net.modules().OfType<TorchSharp.Modules.Conv2d>().ToArray();
        Assert.Equal(12, convs.Length);
        Assert.Equal(12, net.modules().OfType<TorchSharp.Modules.BatchNorm2d>().Count());
        Assert.All(convs, c => Assert.Null(c.bias));
        Assert.Equal(arch.ParameterCount(channels, classes), net.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void Nin_bn_class_scores_can_be_negative_because_no_relu_follows_the_class_convolution()
    {
        manual_seed(3);
        using var net = NetworkArchitectures.NinBn.Create(1, 4);
        net.eval();
        using var _ = no_grad();
        using var x = rand(8, 1, 67, 67);
        using var y = net.forward(x);
        Assert.Equal(new long[] { 8, 4 }, y.shape);
        Assert.True(y.min().item<float>() < 0, "nin-bn's logits come from BatchNorm without ReLU and must be able to go below zero");

        using var d2l = NetworkArchitectures.Nin.Create(1, 4);
        d2l.eval();
        using var z = d2l.forward(x);
        Assert.True(z.min().item<float>() >= 0, "d2l's NiN ends in ReLU: its logits are never negative");
    }

    [Fact]
    public void Batch_norm_needs_more_training_memory_per_image_and_memory_grows_with_the_image()
    {
        Assert.True(NetworkArchitectures.NinBn.BytesPerImage(96) > NetworkArchitectures.Nin.BytesPerImage(96));
        Assert.True(NetworkArchitectures.Nin.BytesPerImage(224) > 4 * NetworkArchitectures.Nin.BytesPerImage(96));
    }

    [Fact]
    public void A_nin_bn_checkpoint_round_trips_with_its_architecture_and_an_unknown_architecture_is_refused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nin-arch-" + Guid.NewGuid().ToString("N"));
        try
        {
            manual_seed(1);
            using var net = NetworkArchitectures.NinBn.Create(3, 3);
            var meta = new ModelMetadata { Name = "shapes", ClassNames = ["a", "b", "c"], ImageSize = 67, Preprocessing = new PreprocessingInfo { Channels = 3 } };
            var saved = Checkpoint.Save(net, meta, dir);
            Assert.Equal("nin-bn", saved.Architecture);
            Assert.Equal(NetworkArchitectures.NinBn.ParameterCount(3, 3), saved.ParameterCount);

            var (loaded, metadata) = Checkpoint.Load(dir);
            using (loaded)
            {
                Assert.Equal("nin-bn", loaded.Architecture);
                using var _ = no_grad();
                using var x = rand(2, 3, 67, 67);
                net.eval();
                using var a = net.forward(x);
                using var b = loaded.forward(x);
                Assert.True(a.allclose(b), "the loaded nin-bn (running statistics included) answers as the saved one");
            }

            var json = File.ReadAllText(Path.Combine(dir, Checkpoint.MetadataFile)).Replace("\"nin-bn\"", "\"vgg\"", StringComparison.Ordinal);
            File.WriteAllText(Path.Combine(dir, Checkpoint.MetadataFile), json);
            var ex = Assert.Throws<CheckpointException>(() => Checkpoint.ReadMetadata(dir));
            Assert.Contains("vgg", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
