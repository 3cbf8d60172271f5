using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Interop;
using Nin.Model.Network;
using Nin.Model.Onnx;

namespace Nin.Api.Models;

/// <summary>Limits of the export cache, bound from the <c>Exports</c> section.</summary>
public sealed class ExportOptions
{
    public const string SectionName = "Exports";

    /// <summary>Bytes of serialised exports kept in memory (least recently used first out).</summary>
    public long CacheBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Exports serialised at once (each loads a checkpoint and writes its weights out).</summary>
    public int ConcurrentBuilds { get; set; } = 1;
}

/// <summary>
/// A version's downloadable forms, made once and kept: ONNX is served from the file written beside the checkpoint
/// when the version was made; where there is none (older or imported versions), and for safetensors and PyTorch, the
/// bytes are made in memory (never written: a GET changes nothing on disk) and cached by the weights' SHA-256, so
/// repeated and concurrent downloads of one version load and serialise it once. Builds run one at a time (or
/// <see cref="ExportOptions.ConcurrentBuilds"/>) and the cache is bounded in bytes, so memory does not grow with requests.
/// </summary>
public sealed class ModelArtefacts(IOptions<ExportOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<Task<byte[]>>> building = new();
    private readonly ByteCache cache = new(() => options.Value.CacheBytes);
    private readonly DedicatedThreads builders = new("nin-export", options.Value.ConcurrentBuilds);
    private long builds;

    /// <summary>The file name and the artefact: a path on disk, or bytes.</summary>
    public sealed record Artefact(string FileName, string? Path, byte[]? Bytes, string ETag);

    /// <summary>How many exports were serialised since start (each one a checkpoint load), for metrics and tests.</summary>
    public long Builds => Interlocked.Read(ref builds);

    /// <summary>The canonical format for a requested name (<c>pt</c> and <c>pth</c> are <c>pytorch</c>), or null.</summary>
    public static string? Normalise(string? format) => (format ?? "onnx").Trim().ToLowerInvariant() switch
    {
        "onnx" => "onnx",
        "safetensors" => "safetensors",
        "pytorch" or "pt" or "pth" => "pytorch",
        _ => null,
    };

    public async Task<Artefact> GetAsync(ModelVersionInfo info, string format, CancellationToken cancellationToken)
    {
        var metadata = info.Metadata;
        var stem = $"{info.Name}-v{info.Version}";
        var etag = $"\"{(metadata.WeightsSha256.Length >= 16 ? metadata.WeightsSha256[..16] : $"{info.Name}-{info.Version}")}-{format}\"";
        var extension = format switch { "onnx" => ".onnx", "safetensors" => ".safetensors", _ => ".pt" };
        if (format == "onnx" && OnnxCache.Find(info.Directory, metadata) is { } file)
        {
            return new Artefact(stem + extension, file, null, etag);
        }

        var key = $"{info.Directory}|{metadata.WeightsSha256}|{format}";
        if (cache.TryGet(key, out var hit))
        {
            return new Artefact(stem + extension, null, hit, etag);
        }

        var lazy = building.GetOrAdd(key, k => new Lazy<Task<byte[]>>(() => BuildAndKeepAsync(k, info, format)));
        var bytes = await lazy.Value.WaitAsync(cancellationToken);
        return new Artefact(stem + extension, null, bytes, etag);
    }

    public void Dispose() => builders.Dispose();

    /// <summary>One build per key however many ask at once; the result is cached and the build forgotten even if every asker left.</summary>
    private async Task<byte[]> BuildAndKeepAsync(string key, ModelVersionInfo info, string format)
    {
        try
        {
            var bytes = await BuildAsync(info, format);
            cache.Add(key, bytes);
            return bytes;
        }
        finally
        {
            building.TryRemove(key, out _);
        }
    }

    /// <summary>
    /// A build takes up to seconds and loads the checkpoint into libtorch: it runs on the export threads
    /// (<see cref="ExportOptions.ConcurrentBuilds"/> of them), not on a thread the requests' work queues for.
    /// </summary>
    private Task<byte[]> BuildAsync(ModelVersionInfo info, string format)
    {
        Interlocked.Increment(ref builds);
        return builders.RunAsync(() => format switch
        {
            "onnx" => OnnxCache.Build(info.Directory),
            "safetensors" => Safetensors.ToBytes(ReadWeights(info), OnnxExporter.MetadataProps(info.Metadata).ToDictionary(p => p.Key, p => p.Value)),
            _ => PyTorchBytes(ReadWeights(info)),
        });
    }

    /// <summary>
    /// A PyTorch file in memory: the buffer starts at the weights' size plus room for the zip's and the pickle's own
    /// bytes, so it is not regrown (and copied) on the way; the result is that buffer, or one copy trimmed to size.
    /// </summary>
    private static byte[] PyTorchBytes(IReadOnlyList<NamedTensor> weights)
    {
        var room = weights.Sum(t => (long)t.Values.Length * sizeof(float)) + 65536 + (weights.Count * 1024L);
        using var buffer = new MemoryStream((int)Math.Min(room, Array.MaxLength));
        PyTorchWeights.Write(weights, buffer);
        return buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray();
    }

    private static IReadOnlyList<NamedTensor> ReadWeights(ModelVersionInfo info)
    {
        var (network, _) = Checkpoint.Load(info.Directory);
        using (network)
        {
            return NinWeights.Read(network);
        }
    }
}
