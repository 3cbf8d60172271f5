using System.Text.Json;
using Nin.Model.Checkpoints;

namespace Nin.Model.Evaluation;

/// <summary>
/// An activation that overrode the promotion gate (<c>?force=true</c>): when, by whom (the API key's name, or
/// <c>anonymous</c> on a service without keys), the version it replaced, and the reasons the gate gave (empty when it
/// would have passed anyway).
/// </summary>
public sealed record ForcedActivation(DateTimeOffset At, string By, string? Replaced, IReadOnlyList<PromotionReason> Overridden);

/// <summary>
/// <c>forced-activations.json</c> beside a version's weights: every forced activation of it, oldest first. Kept apart
/// from <c>model.json</c>, which describes the weights and is never rewritten; written durably (temporary file, fsync, rename).
/// </summary>
public static class ForcedActivations
{
    public const string FileName = "forced-activations.json";

    private static readonly Lock Gate = new();

    public static IReadOnlyList<ForcedActivation> Read(string versionDirectory)
    {
        var path = Path.Combine(versionDirectory, FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<List<ForcedActivation>>(File.ReadAllText(path), ModelMetadata.JsonOptions) ?? [] : [];
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return [];
        }
    }

    public static void Append(string versionDirectory, ForcedActivation entry)
    {
        lock (Gate)
        {
            var all = Read(versionDirectory).Append(entry).ToList();
            DurableFile.WriteText(Path.Combine(versionDirectory, FileName), JsonSerializer.Serialize(all, ModelMetadata.JsonOptions));
        }
    }
}
