using System.Text.Json;
using Nin.Model.Checkpoints;

namespace Nin.Api.Models;

/// <summary>
/// Where an on-demand evaluation (POST .../evaluate) stands, kept beside the version as <c>evaluation-status.json</c>
/// until it succeeds: <c>queued</c>, <c>running</c> or <c>failed</c> with the reason, so GET .../evaluation can say so
/// instead of a bare "not evaluated".
/// </summary>
public sealed record EvaluationStatus(string State, string? Error, string? HangfireJobId, DateTimeOffset At)
{
    public const string FileName = "evaluation-status.json";
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Failed = "failed";

    public static EvaluationStatus? Read(string versionDirectory)
    {
        var path = Path.Combine(versionDirectory, FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<EvaluationStatus>(File.ReadAllText(path), ModelMetadata.JsonOptions) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    public void Write(string versionDirectory)
    {
        if (Directory.Exists(versionDirectory))
        {
            DurableFile.WriteText(Path.Combine(versionDirectory, FileName), JsonSerializer.Serialize(this, ModelMetadata.JsonOptions));
        }
    }

    public static void Clear(string versionDirectory) => DurableFile.TryDelete(Path.Combine(versionDirectory, FileName));
}
