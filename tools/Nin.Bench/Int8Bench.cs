using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Onnx;

namespace Nin.Bench;

/// <summary>
/// What the <c>predict</c> and <c>forward</c> benchmarks need for <c>--precision fp32,int8</c>: each benchmark network's
/// int8 model, made by the service's own quantizer (calibrated on Fashion-MNIST training images). The benchmark's
/// networks have random weights (speed does not depend on them), so their accuracy figures mean nothing and the
/// services under test run with <c>Serving:Int8MarginPoints=100</c> so that they serve int8 regardless.
/// </summary>
internal static class Int8Bench
{
    public const string Fp32 = "fp32";
    public const string Int8 = "int8";

    public static string[] Precisions(Args args)
    {
        var precisions = args.Get("precision", Fp32).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.ToLowerInvariant()).Distinct().ToArray();
        return precisions.Length > 0 && precisions.All(p => p is Fp32 or Int8)
            ? precisions
            : throw new ArgumentException($"--precision takes fp32, int8 or both (fp32,int8); got '{args.Get("precision")}'.");
    }

    /// <summary>Makes the version's int8 model (its record and file beside it), as training does for a new version.</summary>
    public static void Quantize(Args args, ModelVersionInfo version, int threads)
    {
        var data = BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), BuiltInDatasets.FashionMnist, 2000, 200);
        var record = Int8Cache.Prepare(version.Directory, data.Train, data.Test, new Int8Options { Threads = threads });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"int8: {version.Name} quantized in {record.Seconds:F1} s ({record.Calibration.Images} calibration images; random weights, so accuracy is not the point)"));
    }

    /// <summary>The ONNX file a precision runs: the fp32 export or the int8 model.</summary>
    public static string ModelFile(ModelVersionInfo version, string precision) => precision == Int8
        ? Int8Cache.ExistingFile(version.Directory, version.Metadata) ?? throw new InvalidOperationException($"{version.Name} has no int8 model.")
        : OnnxCache.Ensure(version.Directory);

    /// <summary>What the service says it serves the active version in (its /health/live), to show int8 is really in use.</summary>
    public static async Task<string> ServingPrecisionAsync(HttpClient http)
    {
        var live = await http.GetFromJsonAsync<JsonElement>(new Uri("/health/live", UriKind.Relative));
        string? Text(string name) => live.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        return $"serves {Text("precision") ?? "?"} ({Text("precisionReason") ?? "no reason given"}); int8 acceleration: {Text("int8Acceleration") ?? "none"}";
    }
}
