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
        if (Find(directory, metadata) is { } existing)
        {
            return existing;
        }

        var path = Path.Combine(directory, FileName(metadata));
        DurableFile.Write(path, Build(directory)); // a failed write (a full disk) leaves no temporary behind
        return path;
    }

    /// <summary>The ONNX file already beside the checkpoint (written when the version was made), or null; nothing is written.</summary>
    public static string? Find(string directory, ModelMetadata metadata)
    {
        var path = Path.Combine(directory, FileName(metadata));
        return File.Exists(path) ? path : null;
    }

    /// <summary>The checkpoint exported as ONNX in memory (on the CPU); nothing is written.</summary>
    public static byte[] Build(string directory)
    {
        var (network, loaded) = Checkpoint.Load(directory);
        using (network)
        {
            return OnnxExporter.Export(network, loaded);
        }
    }
}
