using System.Security.Cryptography;
using System.Text.Json;
using Nin.Model.Network;
using Nin.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Model.Checkpoints;

/// <summary>A checkpoint folder could not be used; the message says which file and why.</summary>
public sealed class CheckpointException : IOException
{
    public CheckpointException(string message) : base(message)
    {
    }

    public CheckpointException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>
/// A trained network on disk: a folder with <c>weights.bin</c> (TorchSharp format) and <c>model.json</c>.
/// Loading is strict: the metadata must be complete and consistent and the weights must match it exactly.
/// </summary>
public static class Checkpoint
{
    public const string MetadataFile = "model.json";

    /// <summary>Writes weights and metadata into <paramref name="directory"/>, atomically replacing any previous content.</summary>
    public static ModelMetadata Save(ImageClassifier network, ModelMetadata metadata, string directory)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(directory))!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(directory)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            var weights = Path.Combine(staging, metadata.WeightsFile);
            network.save(weights);
            var complete = metadata with
            {
                Architecture = network.Architecture,
                InputChannels = network.InputChannels,
                ParameterCount = network.parameters().Sum(p => p.numel()),
                WeightsSha256 = Sha256(weights),
                TorchSharpVersion = string.IsNullOrEmpty(metadata.TorchSharpVersion) ? TorchRuntime.TorchSharpVersion : metadata.TorchSharpVersion,
                TorchBackend = string.IsNullOrEmpty(metadata.TorchBackend) ? TorchRuntime.Backend : metadata.TorchBackend,
            };
            Validate(complete, staging);
            File.WriteAllText(Path.Combine(staging, MetadataFile), JsonSerializer.Serialize(complete, ModelMetadata.JsonOptions));

            if (Directory.Exists(directory))
            {
                var old = staging + ".old";
                Directory.Move(directory, old);
                Directory.Move(staging, directory);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(staging, directory);
            }

            return complete;
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>Reads and validates <c>model.json</c> without touching the weights.</summary>
    public static ModelMetadata ReadMetadata(string directory)
    {
        var path = Path.Combine(directory, MetadataFile);
        if (!File.Exists(path))
        {
            throw new CheckpointException($"No {MetadataFile} in checkpoint folder '{directory}'.");
        }

        ModelMetadata? metadata;
        try
        {
            metadata = JsonSerializer.Deserialize<ModelMetadata>(File.ReadAllText(path), ModelMetadata.JsonOptions);
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"'{path}' is not valid checkpoint metadata: {ex.Message}", ex);
        }

        if (metadata is null)
        {
            throw new CheckpointException($"'{path}' is empty.");
        }

        Validate(metadata, directory);
        return metadata;
    }

    /// <summary>
    /// Loads a checkpoint onto <paramref name="device"/> in eval mode. With <paramref name="expectedClasses"/>,
    /// a checkpoint for another number of classes is refused.
    /// </summary>
    public static (ImageClassifier Network, ModelMetadata Metadata) Load(string directory, Device? device = null, int? expectedClasses = null)
    {
        var metadata = ReadMetadata(directory);
        if (expectedClasses is { } expected && expected != metadata.ClassNames.Count)
        {
            throw new CheckpointException($"Checkpoint '{directory}' classifies {metadata.ClassNames.Count} classes, but {expected} were expected.");
        }

        var weights = Path.Combine(directory, metadata.WeightsFile);
        var actual = Sha256(weights);
        if (!string.Equals(actual, metadata.WeightsSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new CheckpointException($"Weights '{weights}' are corrupt or were replaced: SHA-256 {actual} differs from {metadata.WeightsSha256} recorded in {MetadataFile}.");
        }

        var architecture = NetworkArchitectures.Get(metadata.Architecture);
        var network = architecture.Create(metadata.InputChannels, metadata.ClassNames.Count);
        try
        {
            network.load(weights, strict: true);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            network.Dispose();
            throw new CheckpointException(
                $"Weights '{weights}' do not fit a {architecture.Name} network with {metadata.InputChannels} input channel(s) and {metadata.ClassNames.Count} classes: {ex.Message}", ex);
        }

        if (device is not null && device.type != DeviceType.CPU)
        {
            network.to(device);
        }

        network.eval();
        return (network, metadata);
    }

    public static void Validate(ModelMetadata m, string directory)
    {
        void Fail(string why) => throw new CheckpointException($"Checkpoint '{directory}': {why}");

        if (m.Format != ModelMetadata.CurrentFormat)
        {
            Fail($"format {m.Format} is not supported (this build reads format {ModelMetadata.CurrentFormat}).");
        }

        var architecture = NetworkArchitectures.Find(m.Architecture);
        if (architecture is null)
        {
            Fail($"architecture '{m.Architecture}' is not one this build knows ({string.Join(", ", NetworkArchitectures.Names)}).");
        }

        if (string.IsNullOrWhiteSpace(m.Name))
        {
            Fail("the model has no name.");
        }

        if (m.ClassNames is null || m.ClassNames.Count < 2 || m.ClassNames.Any(string.IsNullOrWhiteSpace) || m.ClassNames.Distinct().Count() != m.ClassNames.Count)
        {
            Fail("classNames must list at least two distinct, non-empty names.");
        }

        if (m.InputChannels is not (1 or 3) || m.Preprocessing is null || m.Preprocessing.Channels != m.InputChannels)
        {
            Fail($"inputChannels must be 1 or 3 and agree with preprocessing.channels (got {m.InputChannels} and {m.Preprocessing?.Channels}).");
        }

        if (m.ImageSize < architecture!.MinInputSize || m.ImageSize > architecture.MaxInputSize)
        {
            Fail($"imageSize {m.ImageSize} is outside {architecture.MinInputSize}..{architecture.MaxInputSize}.");
        }

        if (m.Preprocessing!.NativeWidth < 1 || m.Preprocessing.NativeHeight < 1)
        {
            Fail("preprocessing.nativeWidth and nativeHeight must be positive.");
        }

        if (string.IsNullOrWhiteSpace(m.WeightsFile) || m.WeightsFile != Path.GetFileName(m.WeightsFile))
        {
            Fail($"weightsFile '{m.WeightsFile}' must be a plain file name inside the folder.");
        }

        if (!File.Exists(Path.Combine(directory, m.WeightsFile)))
        {
            Fail($"weights file '{m.WeightsFile}' is missing.");
        }

        var expectedParameters = architecture.ParameterCount(m.InputChannels, m.ClassNames!.Count);
        if (m.ParameterCount != 0 && m.ParameterCount != expectedParameters)
        {
            Fail($"parameterCount {m.ParameterCount} does not match a {architecture.Name} network with {m.InputChannels} channel(s) and {m.ClassNames.Count} classes ({expectedParameters}).");
        }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
