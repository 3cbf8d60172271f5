using Nin.Model.Checkpoints;

namespace Nin.Model.Onnx;

/// <summary>
/// A version's ONNX file, built from its checkpoint the first time it is asked for and kept beside it
/// (<c>model.{first 16 hex digits of the weights' SHA-256}.onnx</c>, so a file never outlives the weights it was made from).
/// </summary>
public static class OnnxCache
{
    public static string FileName(ModelMetadata metadata) =>
        $"model.{(metadata.WeightsSha256.Length >= 16 ? metadata.WeightsSha256[..16] : "unhashed")}.onnx";

    /// <summary>The ONNX file of the checkpoint in <paramref name="directory"/>, exporting it (on the CPU) if it is not there yet.</summary>
    public static string Ensure(string directory)
    {
        var metadata = Checkpoint.ReadMetadata(directory);
        var path = Path.Combine(directory, FileName(metadata));
        if (File.Exists(path))
        {
            return path;
        }

        var (network, loaded) = Checkpoint.Load(directory);
        byte[] onnx;
        using (network)
        {
            onnx = OnnxExporter.Export(network, loaded);
        }

        DurableFile.Write(path, onnx); // a failed write (a full disk) leaves no temporary behind
        return path;
    }
}
