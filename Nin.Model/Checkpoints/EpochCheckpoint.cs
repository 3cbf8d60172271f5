using System.Text.Json;
using Nin.Model.Network;
using Nin.Model.Training;

namespace Nin.Model.Checkpoints;

/// <summary>
/// The checkpoint a running job writes after every epoch (<c>weights.bin</c>, <c>optimizer.bin</c>,
/// <c>state.json</c>), so a restarted service resumes after the last finished epoch.
/// </summary>
public static class EpochCheckpoint
{
    private sealed record State(int CompletedEpochs, IReadOnlyList<EpochMetrics> History);

    /// <summary>Writes all three files into a fresh folder and swaps it in whole (as <see cref="Checkpoint.Save"/> does).</summary>
    public static void Save(string dir, int epoch, ImageClassifier network, TorchSharp.Modules.OptimizerHelper optimizer, IReadOnlyList<EpochMetrics> history) =>
        AtomicDirectory.Replace(dir, staging =>
        {
            network.save(Path.Combine(staging, "weights.bin"));
            optimizer.save_state_dict(Path.Combine(staging, "optimizer.bin"));
            File.WriteAllText(Path.Combine(staging, "state.json"), JsonSerializer.Serialize(new State(epoch, history), ModelMetadata.JsonOptions));
            return epoch;
        });

    /// <summary>Where to resume from, or null when there is no (readable) checkpoint.</summary>
    public static ResumePoint? Read(string dir)
    {
        AtomicDirectory.Recover(dir);
        var state = Path.Combine(dir, "state.json");
        if (!File.Exists(state))
        {
            return null;
        }

        try
        {
            var s = JsonSerializer.Deserialize<State>(File.ReadAllText(state), ModelMetadata.JsonOptions);
            return s is null ? null : new ResumePoint(s.CompletedEpochs, s.History, Path.Combine(dir, "weights.bin"), Path.Combine(dir, "optimizer.bin"));
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }
}
