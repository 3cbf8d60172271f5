using System.Text.Json;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Sweeps;

/// <summary>A trial as its sweep recorded it: its number, its job (once queued), its searched settings and epochs.</summary>
public sealed record SweepTrialRecord(int Trial, string? JobId, IReadOnlyDictionary<string, JsonElement> Parameters, int Epochs);

/// <summary>A sweep's definition and its trials' jobs: <c>sweep.json</c>, written when the sweep is created.</summary>
public sealed record SweepRecord(
    string SweepId,
    DateTimeOffset CreatedAt,
    string Method,
    string Metric,
    EarlyStoppingSettings EarlyStopping,
    int MaxTrials,
    bool Activate,
    long Seed,
    TrainRequest Base,
    IReadOnlyDictionary<string, SweepParameter> Space,
    IReadOnlyList<SweepTrialRecord> Trials);

/// <summary>How a sweep ended: <c>outcome.json</c>, written once, by the one process that claimed the sweep's end.</summary>
public sealed record SweepOutcome(SweepStatus Status, DateTimeOffset FinishedAt, SweepBest? Best, SweepPromotion? Promotion);

/// <summary>
/// Sweeps as files in the shared work folder, <c>{work}/sweeps/{id}/</c>, beside the jobs' checkpoints (one folder every
/// API replica and worker sees): <c>sweep.json</c> (the definition and the trials' job ids), <c>outcome.json</c> once it
/// ended, and <c>end.claim</c>, which exactly one process creates (create-new is atomic) before it decides the end. The
/// trials' state is their job records; nothing here changes while they run, so a sweep survives any process's death
/// as its jobs do.
/// </summary>
public sealed partial class SweepStore(IOptions<NinOptions> options, ILogger<SweepStore> logger)
{
    public const string RecordFile = "sweep.json";
    public const string OutcomeFile = "outcome.json";
    public const string ClaimFile = "end.claim";

    /// <summary>A claim older than this whose holder wrote no outcome is taken to be from a process that died.</summary>
    public static readonly TimeSpan StaleClaim = TimeSpan.FromMinutes(2);

    public string Root { get; } = Directory.CreateDirectory(Path.Combine(options.Value.ResolvedWorkDirectory, "sweeps")).FullName;

    private string Folder(string sweepId) => Path.Combine(Root, sweepId);

    public static bool IsValidId(string id) => id.Length == 12 && id.All(char.IsAsciiHexDigitLower);

    public static string NewId() => Guid.NewGuid().ToString("N")[..12];

    /// <summary>Writes a new or updated definition (fsynced, renamed into place).</summary>
    public void Save(SweepRecord record)
    {
        var dir = Directory.CreateDirectory(Folder(record.SweepId)).FullName;
        DurableFile.WriteText(Path.Combine(dir, RecordFile), JsonSerializer.Serialize(record, ModelMetadata.JsonOptions));
    }

    /// <summary>Removes a sweep that could not be queued in full (its trials' jobs are cancelled by the caller).</summary>
    public void Delete(string sweepId)
    {
        try
        {
            Directory.Delete(Folder(sweepId), recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>The sweep, or null for an unknown (or unreadable: logged) one.</summary>
    public SweepRecord? Get(string sweepId)
    {
        if (!IsValidId(sweepId))
        {
            return null;
        }

        var file = Path.Combine(Folder(sweepId), RecordFile);
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<SweepRecord>(File.ReadAllText(file), ModelMetadata.JsonOptions) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            LogDamaged(logger, sweepId, ex.Message);
            return null;
        }
    }

    /// <summary>Every sweep, newest first.</summary>
    public IEnumerable<SweepRecord> List() =>
        Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(id => id is not null && IsValidId(id))
            .Select(id => Get(id!))
            .OfType<SweepRecord>()
            .OrderByDescending(s => s.CreatedAt);

    /// <summary>Sweeps that have not ended yet (no outcome): what the supervisor watches.</summary>
    public IEnumerable<SweepRecord> Unfinished() =>
        Directory.EnumerateDirectories(Root)
            .Where(dir => Path.GetFileName(dir) is { } id && IsValidId(id) && !File.Exists(Path.Combine(dir, OutcomeFile)))
            .Select(dir => Get(Path.GetFileName(dir)))
            .OfType<SweepRecord>();

    public SweepOutcome? Outcome(string sweepId)
    {
        var file = Path.Combine(Folder(sweepId), OutcomeFile);
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<SweepOutcome>(File.ReadAllText(file), ModelMetadata.JsonOptions) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            LogDamaged(logger, sweepId, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// Claims the right to write the sweep's outcome: true for exactly one caller (the file is created new), or for a
    /// caller that finds a stale claim (its holder died before writing the outcome). False when it has an outcome.
    /// </summary>
    public bool TryClaimEnd(string sweepId, string holder)
    {
        var dir = Folder(sweepId);
        var claim = Path.Combine(dir, ClaimFile);
        if (File.Exists(Path.Combine(dir, OutcomeFile)))
        {
            return false;
        }

        try
        {
            using var stream = new FileStream(claim, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(holder));
            stream.Flush(flushToDisk: true);
            return true;
        }
        catch (IOException) when (File.Exists(claim))
        {
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(claim) < StaleClaim)
            {
                return false;
            }

            LogStaleClaim(logger, sweepId, SafeRead(claim));
            File.SetLastWriteTimeUtc(claim, DateTime.UtcNow); // racing takers: the loser sees a fresh claim
            return true;
        }
    }

    /// <summary>Records how the sweep ended (after <see cref="TryClaimEnd"/>).</summary>
    public void WriteOutcome(string sweepId, SweepOutcome outcome) =>
        DurableFile.WriteText(Path.Combine(Folder(sweepId), OutcomeFile), JsonSerializer.Serialize(outcome, ModelMetadata.JsonOptions));

    private static string SafeRead(string file)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (IOException)
        {
            return "?";
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweep {SweepId}: its record cannot be read ({Reason}); it is kept as it is and not listed")]
    private static partial void LogDamaged(ILogger logger, string sweepId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweep {SweepId}: the process that claimed its end ({Holder}) wrote no outcome; this one ends it")]
    private static partial void LogStaleClaim(ILogger logger, string sweepId, string holder);
}
