using System.Text.Json.Nodes;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class CheckpointTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("nin-ckpt-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static ModelMetadata Metadata(int classes) => new()
    {
        Name = "test",
        Version = 1,
        ClassNames = Enumerable.Range(0, classes).Select(i => $"class-{i}").ToArray(),
        ImageSize = 96,
        Preprocessing = new PreprocessingInfo(),
        Recipe = new TrainingRecipe { Dataset = "fashion-mnist", Epochs = 1, BatchSize = 8, LearningRate = 0.1 },
    };

    [Fact]
    public void Save_then_load_gives_bit_identical_outputs_in_eval_mode()
    {
        var dir = Path.Combine(root, "m");
        using var net = new NinNetwork(1, 10);
        net.eval();
        var saved = Checkpoint.Save(net, Metadata(10), dir);

        var (loaded, metadata) = Checkpoint.Load(dir);
        using (loaded)
        {
            using var _ = no_grad();
            using var x = rand(3, 1, 96, 96);
            using var a = net.forward(x);
            using var b = loaded.forward(x);
            Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
            Assert.False(loaded.training);
        }

        Assert.Equal(1_992_166, metadata.ParameterCount);
        Assert.Equal(64, metadata.WeightsSha256.Length);
        Assert.Equal(saved.WeightsSha256, metadata.WeightsSha256);
        Assert.False(string.IsNullOrEmpty(metadata.TorchSharpVersion));
        Assert.Equal(10, metadata.ClassNames.Count);
    }

    [Fact]
    public void A_continued_recipe_keeps_where_it_started_from()
    {
        var dir = Path.Combine(root, "m");
        using var net = new NinNetwork(1, 10);
        var first = Metadata(10).Recipe!;
        var metadata = Metadata(10) with
        {
            Recipe = first with
            {
                Epochs = 5,
                LearningRate = 0.01,
                ContinuedFrom = new ContinuedFrom { Name = "test", Version = 1, WeightsSha256 = new string('a', 64), Epochs = 4, Recipe = first with { Epochs = 4 } },
            },
        };
        Checkpoint.Save(net, metadata, dir);

        var read = Checkpoint.ReadMetadata(dir).Recipe!;
        Assert.Equal(5, read.Epochs);
        Assert.Equal(0.01, read.LearningRate);
        Assert.Equal(4, read.ContinuedFrom!.Epochs);
        Assert.Equal(0.1, read.ContinuedFrom.Recipe.LearningRate);
        Assert.Equal("fresh", read.ContinuedFrom.OptimizerState);
        Assert.Null(read.ContinuedFrom.Recipe.ContinuedFrom);
    }

    [Fact]
    public void Loading_with_another_class_count_fails_clearly()
    {
        var dir = Path.Combine(root, "m");
        using var net = new NinNetwork(1, 10);
        Checkpoint.Save(net, Metadata(10), dir);

        var expected = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir, expectedClasses: 5));
        Assert.Contains("10 classes", expected.Message, StringComparison.Ordinal);

        // Metadata that names five classes over ten-class weights: the weights don't fit.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "model.json")))!.AsObject();
        json["classNames"] = new JsonArray("a", "b", "c", "d", "e");
        json["parameterCount"] = 0;
        File.WriteAllText(Path.Combine(dir, "model.json"), json.ToJsonString());
        var mismatch = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir));
        Assert.Contains("do not fit a nin network", mismatch.Message, StringComparison.Ordinal);
        Assert.Contains("5 classes", mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Corrupt_weights_fail_clearly()
    {
        var dir = Path.Combine(root, "m");
        using var net = new NinNetwork(1, 10);
        Checkpoint.Save(net, Metadata(10), dir);
        var weights = Path.Combine(dir, "weights.bin");
        var bytes = File.ReadAllBytes(weights);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(weights, bytes);

        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir));
        Assert.Contains("corrupt", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_weights_with_matching_hash_still_fail_clearly()
    {
        var dir = Path.Combine(root, "m");
        using var net = new NinNetwork(1, 10);
        Checkpoint.Save(net, Metadata(10), dir);
        var weights = Path.Combine(dir, "weights.bin");
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..1000]);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "model.json")))!.AsObject();
        using (var s = File.OpenRead(weights))
        {
            json["weightsSha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(s));
        }

        File.WriteAllText(Path.Combine(dir, "model.json"), json.ToJsonString());
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load(dir));
        Assert.Contains("do not fit", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("""{"format":1,"architecture":"resnet","name":"x","classNames":["a","b"],"preprocessing":{},"weightsFile":"weights.bin"}""")]
    [InlineData("""{"format":9,"architecture":"nin-d2l","name":"x","classNames":["a","b"],"preprocessing":{},"weightsFile":"weights.bin"}""")]
    [InlineData("""{"format":1,"architecture":"nin-d2l","name":"x","classNames":["a"],"preprocessing":{},"weightsFile":"weights.bin"}""")]
    [InlineData("""{"format":1,"architecture":"nin-d2l","name":"x","classNames":["a","b"],"imageSize":64,"preprocessing":{},"weightsFile":"weights.bin"}""")]
    [InlineData("""{"format":1,"architecture":"nin-d2l","name":"x","classNames":["a","b"],"preprocessing":{},"weightsFile":"../../etc/passwd"}""")]
    public void Invalid_metadata_is_refused(string json)
    {
        var dir = Path.Combine(root, "bad");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "weights.bin"), [1, 2, 3]);
        File.WriteAllText(Path.Combine(dir, "model.json"), json);
        Assert.Throws<CheckpointException>(() => Checkpoint.ReadMetadata(dir));
    }

    [Fact]
    public void Missing_folder_is_refused()
    {
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Path.Combine(root, "nothing")));
        Assert.Contains("model.json", ex.Message, StringComparison.Ordinal);
    }
}
