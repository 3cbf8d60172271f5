using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

/// <summary>The managed preprocessing ONNX Runtime serving uses matches Torch's (<see cref="Preprocess.ToNetworkInput"/>).</summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class ManagedPreprocessTests
{
    [Theory]
    [InlineData(1, 28, 28, 96)]
    [InlineData(1, 28, 28, 224)]
    [InlineData(1, 28, 28, 67)]
    [InlineData(3, 32, 40, 72)]
    [InlineData(1, 100, 100, 67)]
    [InlineData(1, 28, 28, 28)]
    public void Matches_torch_bilinear_resize(int channels, int height, int width, int size)
    {
        var random = new Random(channels * 1000 + height + size);
        var bytes = new byte[2 * channels * height * width];
        random.NextBytes(bytes);
        using var scope = NewDisposeScope();
        var expected = Preprocess.ToNetworkInput(tensor(bytes, [2, channels, height, width], ScalarType.Byte), size).data<float>().ToArray();

        var actual = new float[2 * channels * size * size];
        var per = channels * size * size;
        for (var i = 0; i < 2; i++)
        {
            ManagedPreprocess.ToNetworkInput(bytes.AsSpan(i * channels * height * width, channels * height * width), channels, height, width, size, actual.AsSpan(i * per, per));
        }

        // Torch's vectorised kernel sums in another order: a few float roundings apart, far below what shows in the outputs.
        var diff = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 5e-6, $"max |managed - torch| = {diff}");
    }
}
