using Nin.Model.Network;

namespace Nin.Api.Training;

/// <summary>
/// What a training run writes to disk, estimated before it starts from the network's size: the epoch checkpoint
/// (weights, and momentum buffers when the optimizer keeps them; two copies while one replaces the other) and the model
/// version (weights, the ONNX file, the evaluation's per-image predictions).
/// </summary>
public static class RunFootprint
{
    private const long Slack = 1 << 20; // metadata, state.json, the file system's own blocks

    public static long WeightBytes(string architecture, int channels, int classes) =>
        NetworkArchitectures.Get(architecture).ParameterCount(channels, classes) * sizeof(float);

    public static long CheckpointBytes(string architecture, int channels, int classes, double momentum)
    {
        var weights = WeightBytes(architecture, channels, classes);
        return (2 * (weights + (momentum > 0 ? weights : 0))) + Slack;
    }

    public static long ModelBytes(string architecture, int channels, int classes, int testImages) =>
        (2 * WeightBytes(architecture, channels, classes)) + (testImages * 48L) + Slack;
}
