using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Nin.Model.Checkpoints;
using Nin.Model.Data;

namespace Nin.Model.Onnx;

/// <summary>How a version is quantized: calibration sample size and the accuracy it may lose (<see cref="Int8Cache.Prepare"/>).</summary>
public sealed record Int8Options
{
    /// <summary>Training images whose activations set the int8 ranges (drawn at random with <see cref="Seed"/>; all when fewer).</summary>
    public int CalibrationImages { get; init; } = 256;

    /// <summary>Most accuracy, in percentage points of the test split, the int8 model may lose against fp32 and still serve.</summary>
    public double MarginPoints { get; init; } = 0.5;

    public int Seed { get; init; }

    /// <summary>ONNX Runtime threads for calibration and evaluation (0: all cores).</summary>
    public int Threads { get; init; }
}

/// <summary>Which images calibrated a version's int8 model.</summary>
public sealed record Int8CalibrationInfo(string Dataset, string Split, int Images, int Seed, string Method);

/// <summary>
/// A version's int8 model and what was measured when it was made, stored as <c>quantization.json</c> beside the weights
/// and the int8 file. Whether it serves is decided from these figures and the margin in force (<see cref="Assess"/>).
/// </summary>
public sealed record Int8Record
{
    public const int CurrentFormat = 1;

    public const string SchemeText = "QDQ (QuantizeLinear/DequantizeLinear) around each convolution: int8 weights, symmetric per output channel; int32 biases; uint8 activations, asymmetric, min/max calibrated; pooling in uint8; global average pooling and softmax in fp32";

    public int Format { get; init; } = CurrentFormat;

    public string Scheme { get; init; } = SchemeText;

    /// <summary>The int8 ONNX file's name in the version's folder.</summary>
    public required string File { get; init; }

    public required string FileSha256 { get; init; }

    public long FileBytes { get; init; }

    /// <summary>The fp32 weights it was made from: a record for other weights is ignored.</summary>
    public required string WeightsSha256 { get; init; }

    /// <summary>SHA-256 of the int8 graph the accuracy was measured on (<see cref="Int8Quantizer.GraphSha256"/>).</summary>
    public required string GraphSha256 { get; init; }

    /// <summary>
    /// The calibrated range of each quantized activation: with the weights they determine the int8 graph, so
    /// <see cref="Int8Cache.Restore"/> can make the same file again without the training images.
    /// </summary>
    public required IReadOnlyDictionary<string, TensorRange> Ranges { get; init; }

    public required Int8CalibrationInfo Calibration { get; init; }

    /// <summary>fp32 and int8 on the test split; null when no test split was at hand (then it does not serve).</summary>
    public Int8Accuracy? Accuracy { get; init; }

    public DateTimeOffset QuantizedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Seconds spent calibrating, quantizing and evaluating.</summary>
    public double Seconds { get; init; }

    /// <summary>Whether the int8 model may serve under a margin of <paramref name="marginPoints"/>, and if not, the warning that says why.</summary>
    public (bool Servable, string? Warning) Assess(double marginPoints)
    {
        if (Accuracy is not { } a)
        {
            return (false, "int8 not served: its accuracy was not measured (no test split was available when it was quantized).");
        }

        return a.DropPoints > marginPoints
            ? (false, string.Create(CultureInfo.InvariantCulture,
                $"int8 not served: its accuracy {a.Int8:P2} is {a.DropPoints:F2} points below fp32's {a.Fp32:P2} on {a.TestImages} test images (margin {marginPoints:F2}); fp32 serves."))
            : (true, null);
    }
}

/// <summary>
/// A version's int8 model (<c>model.{16 hex digits of the weights' SHA-256}.int8.onnx</c>) beside its fp32 ONNX file,
/// with its <see cref="Int8Record"/> (<c>quantization.json</c>). Written once when the version is quantized
/// (<see cref="Prepare"/>, the single call of a new version's preparation), only read when it serves or is exported.
/// </summary>
public static class Int8Cache
{
    public const string RecordFile = "quantization.json";

    private static readonly JsonSerializerOptions CompactJson = new(ModelMetadata.JsonOptions) { WriteIndented = false };

    public static string FileName(ModelMetadata metadata) => Path.GetFileNameWithoutExtension(OnnxCache.FileName(metadata)) + ".int8.onnx";

    /// <summary>
    /// Quantizes the version in <paramref name="directory"/>: its fp32 ONNX file (exported if missing), activation ranges
    /// from a sample of <paramref name="calibration"/> (the version's own training images), the int8 file, and both
    /// models' accuracy on <paramref name="test"/> (the version's test split; null: not measured, so not served).
    /// Replaces any earlier int8 file and record of the version.
    /// </summary>
    public static Int8Record Prepare(string directory, ImageDataset calibration, ImageDataset? test, Int8Options? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new Int8Options();
        var watch = Stopwatch.StartNew();
        var metadata = Checkpoint.ReadMetadata(directory);
        Check(calibration, metadata, "calibration");
        if (test is not null)
        {
            Check(test, metadata, "test");
        }

        if (calibration.Count == 0)
        {
            throw new ArgumentException($"Dataset '{calibration.Name}' has no training images to calibrate with.", nameof(calibration));
        }

        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        var fp32 = File.ReadAllBytes(OnnxCache.Ensure(directory));
        var indices = Int8Calibration.Sample(calibration.Count, Math.Max(1, options.CalibrationImages), options.Seed);
        var ranges = Int8Calibration.Calibrate(fp32, Int8Quantizer.TensorsToCalibrate(fp32), calibration, indices, metadata.ImageSize, threads, cancellationToken);
        var calibrated = new Int8CalibrationInfo(calibration.Name, "train", indices.Length, options.Seed, "min-max");
        var int8 = Quantize(fp32, ranges, calibrated);
        var accuracy = test is null ? null : Int8Accuracy.Measure(fp32, int8, test, metadata.ImageSize, threads, cancellationToken);

        var record = new Int8Record
        {
            File = FileName(metadata),
            FileSha256 = Convert.ToHexStringLower(SHA256.HashData(int8)),
            FileBytes = int8.Length,
            WeightsSha256 = metadata.WeightsSha256,
            GraphSha256 = Int8Quantizer.GraphSha256(int8),
            Ranges = ranges,
            Calibration = calibrated,
            Accuracy = accuracy,
            Seconds = Math.Round(watch.Elapsed.TotalSeconds, 2),
        };
        Write(directory, record, int8);
        return record;
    }

    /// <summary>
    /// Makes a quantized version's int8 file again from its weights and recorded ranges when the file is missing or
    /// altered (a model that travelled with its record only, like the shipped one, or a lost file). The new file must
    /// have the very graph whose accuracy was measured (same <see cref="Int8Record.GraphSha256"/>), else nothing is
    /// written and the version serves fp32 until it is quantized again. Returns whether a servable file is in place.
    /// </summary>
    public static bool Restore(string directory)
    {
        var metadata = Checkpoint.ReadMetadata(directory);
        if (Read(directory, metadata) is not { } record)
        {
            return false;
        }

        var path = Path.Combine(directory, record.File);
        if (System.IO.File.Exists(path) && string.Equals(Sha256(path), record.FileSha256, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var int8 = Quantize(File.ReadAllBytes(OnnxCache.Ensure(directory)), record.Ranges, record.Calibration);
        if (!string.Equals(Int8Quantizer.GraphSha256(int8), record.GraphSha256, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Write(directory, record with { FileSha256 = Convert.ToHexStringLower(SHA256.HashData(int8)), FileBytes = int8.Length }, int8);
        return true;
    }

    private static byte[] Quantize(byte[] fp32, IReadOnlyDictionary<string, TensorRange> ranges, Int8CalibrationInfo calibration) =>
        Int8Quantizer.Quantize(fp32, ranges, new Dictionary<string, string>
        {
            ["precision"] = "int8",
            ["quantization"] = JsonSerializer.Serialize(new { scheme = Int8Record.SchemeText, calibration }, CompactJson),
        });

    // The file first, then the record naming it: a record on disk always has its file.
    private static void Write(string directory, Int8Record record, byte[] int8)
    {
        WriteAtomically(Path.Combine(directory, record.File), int8);
        WriteAtomically(Path.Combine(directory, RecordFile), JsonSerializer.SerializeToUtf8Bytes(record, ModelMetadata.JsonOptions));
    }

    /// <summary>The version's int8 record, or null (none, unreadable, or made from other weights).</summary>
    public static Int8Record? Read(string directory, ModelMetadata metadata)
    {
        var path = Path.Combine(directory, RecordFile);
        try
        {
            var record = System.IO.File.Exists(path) ? JsonSerializer.Deserialize<Int8Record>(System.IO.File.ReadAllBytes(path), ModelMetadata.JsonOptions) : null;
            return record is not null && record.Format == Int8Record.CurrentFormat
                && string.Equals(record.WeightsSha256, metadata.WeightsSha256, StringComparison.OrdinalIgnoreCase)
                && record.File == Path.GetFileName(record.File)
                ? record
                : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>
    /// The int8 file to serve the version with, or null and why not: not quantized, quantized from other weights,
    /// more than <paramref name="marginPoints"/> less accurate than fp32, or its file missing or altered.
    /// </summary>
    public static (string? Path, string Reason) ForServing(string directory, ModelMetadata metadata, double marginPoints)
    {
        if (Read(directory, metadata) is not { } record)
        {
            return (null, "this version is not quantized (no int8 model made from its weights)");
        }

        var (servable, warning) = record.Assess(marginPoints);
        if (!servable)
        {
            return (null, warning!);
        }

        var path = Path.Combine(directory, record.File);
        if (!System.IO.File.Exists(path) || !string.Equals(Sha256(path), record.FileSha256, StringComparison.OrdinalIgnoreCase))
        {
            return (null, $"its int8 file {record.File} is missing or does not match its record; quantize the version again");
        }

        var a = record.Accuracy!;
        return (path, string.Create(CultureInfo.InvariantCulture,
            $"int8 accuracy {a.Int8:P2} vs fp32 {a.Fp32:P2} on {a.TestImages} test images of {a.Dataset} (margin {marginPoints:F2} points)"));
    }

    /// <summary>The int8 file of a version that has one made from its weights (exported as it is, servable or not), else null.</summary>
    public static string? ExistingFile(string directory, ModelMetadata metadata) =>
        Read(directory, metadata) is { } record && System.IO.File.Exists(Path.Combine(directory, record.File)) ? Path.Combine(directory, record.File) : null;

    private static void Check(ImageDataset set, ModelMetadata metadata, string what)
    {
        if (set.Channels != metadata.InputChannels)
        {
            throw new ArgumentException($"The {what} images of '{set.Name}' have {set.Channels} channel(s); the model takes {metadata.InputChannels}.");
        }

        if (set.ClassNames.Count != metadata.ClassNames.Count)
        {
            throw new ArgumentException($"Dataset '{set.Name}' has {set.ClassNames.Count} classes; the model has {metadata.ClassNames.Count}.");
        }
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Guid.NewGuid():N}.int8.tmp");
        System.IO.File.WriteAllBytes(temp, bytes);
        System.IO.File.Move(temp, path, overwrite: true);
    }

    private static string Sha256(string path)
    {
        using var stream = System.IO.File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
