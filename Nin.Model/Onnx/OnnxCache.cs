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

    /// <summary>The cached ONNX file of the checkpoint in <paramref name="directory"/>, or null when there is none.</summary>
    public static string? Cached(string directory)
    {
        var path = Path.Combine(directory, FileName(Checkpoint.ReadMetadata(directory)));
        return File.Exists(path) ? path : null;
    }

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

        var temp = Path.Combine(directory, $".{Guid.NewGuid():N}.onnx.tmp");
        File.WriteAllBytes(temp, onnx);
        File.Move(temp, path, overwrite: true);
        return path;
    }
}
