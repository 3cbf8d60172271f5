using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Model.Evaluation;

/// <summary>
/// Runs a network over a test split with the preprocessing training used (<see cref="Preprocess.ToNetworkInput"/>),
/// one dispose scope per batch, in eval and inference mode. Give it its own instance: never the one being trained
/// or served.
/// </summary>
public static class Evaluator
{
    public static (ModelEvaluation Evaluation, TestPredictions Predictions) Run(
        ImageClassifier network, ImageDataset test, int imageSize, int batchSize, Device device, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (test.Count == 0)
        {
            throw new ArgumentException($"Dataset '{test.Name}' has no test images to evaluate on.");
        }

        if (test.Channels != network.InputChannels)
        {
            throw new ArgumentException($"Dataset '{test.Name}' has {test.Channels} channel(s); the model takes {network.InputChannels}.");
        }

        var k = test.ClassNames.Count;
        var confusion = new int[k, k];
        var predicted = new int[test.Count];
        var probability = new float[test.Count];
        var imageBytes = test.Channels * test.Height * test.Width;
        network.eval();
        using (inference_mode())
        {
            for (var start = 0; start < test.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var n = Math.Min(batchSize, test.Count - start);
                var bytes = tensor(test.Pixels.AsSpan(start * imageBytes, n * imageBytes).ToArray(), [n, test.Channels, test.Height, test.Width], dtype: ScalarType.Byte).to(device);
                var x = Preprocess.ToNetworkInput(bytes, imageSize);
                var (top, index) = nn.functional.softmax(network.forward(x), 1).max(1);
                var p = top.cpu().data<float>().ToArray();
                var c = index.cpu().data<long>().ToArray();
                for (var i = 0; i < n; i++)
                {
                    predicted[start + i] = (int)c[i];
                    probability[start + i] = p[i];
                    confusion[test.Labels[start + i], c[i]]++;
                }
            }
        }

        var labels = test.Labels.Select(b => (int)b).ToArray();
        return (ModelEvaluation.FromConfusion(test.ClassNames, confusion, test.Name), new TestPredictions(labels, predicted, probability));
    }
}
