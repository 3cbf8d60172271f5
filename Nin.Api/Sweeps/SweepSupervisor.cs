using Microsoft.Extensions.Options;
using Nin.Api.Models;
using Nin.Api.Serving;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Sweeps;

/// <summary>Sweep settings.</summary>
public sealed class SweepOptions
{
    public const string SectionName = "Sweeps";

    /// <summary>How often an API process looks for sweeps whose trials have all ended, to end them (default 1 s).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Ends sweeps: when every trial of a sweep has ended (succeeded, stopped, failed or cancelled, wherever it ran, whichever
/// process died meanwhile), one API process claims the end (<see cref="SweepStore.TryClaimEnd"/>), picks the best trial
/// and, when the sweep asked for it, activates its version the way POST .../activate does: through the promotion gate,
/// loaded and warmed before it serves. Stateless between polls: a restart picks up where the files and job records are.
/// </summary>
public sealed partial class SweepSupervisor(
    SweepStore store, ITrainingJobStore jobs, ModelStore models, ModelActivation activation,
    IOptions<SweepOptions> options, ILogger<SweepSupervisor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.PollInterval);
        do
        {
            foreach (var sweep in Safe(store.Unfinished))
            {
                try
                {
                    await TryEndAsync(sweep, stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
                {
                    LogEndFailed(logger, ex, sweep.SweepId);
                }
            }
        }
        while (await Next(timer, stoppingToken));
    }

    /// <summary>Ends the sweep if every trial has ended; true when this call ended it.</summary>
    public async Task<bool> TryEndAsync(SweepRecord sweep, CancellationToken cancellationToken)
    {
        var rows = new List<(SweepTrialRecord, JobSnapshot?)>();
        foreach (var trial in sweep.Trials)
        {
            if (trial.JobId is null)
            {
                return false; // still being queued
            }

            var job = jobs.TrialJob(trial.JobId); // null: gone or damaged, so it cannot run again and counts as ended
            if (job is { IsFinished: false })
            {
                return false;
            }

            rows.Add((trial, job));
        }

        if (!store.TryClaimEnd(sweep.SweepId, WorkerIdentity.Current))
        {
            return false;
        }

        var best = SweepService.Leader(sweep, rows);
        SweepPromotion? promoted = null;
        if (sweep.Activate)
        {
            promoted = best is null
                ? new SweepPromotion(false, ["No trial stored a model."])
                : await PromoteAsync(best, cancellationToken);
        }

        store.WriteOutcome(sweep.SweepId, new SweepOutcome(best is null ? SweepStatus.Failed : SweepStatus.Succeeded, DateTimeOffset.UtcNow, best, promoted));
        LogEnded(logger, sweep.SweepId, best is null ? "no trial stored a model" : $"best trial {best.Trial}, {sweep.Metric} {best.Metric:0.####}, {best.ModelName} version {best.ModelVersion}",
            promoted is null ? "not asked to activate" : promoted.Activated ? "activated" : $"not activated: {string.Join(" ", promoted.Reasons)}");
        return true;
    }

    private async Task<SweepPromotion> PromoteAsync(SweepBest best, CancellationToken cancellationToken)
    {
        var what = $"{best.ModelName} version {best.ModelVersion}";
        if (models.Find(best.ModelName, best.ModelVersion) is not { } candidate)
        {
            return new SweepPromotion(false, [$"{what} is no longer stored."]);
        }

        // As training's own activation rule: with the gate off, a run that learned nothing (warnings) is not activated.
        var outcome = await activation.ActivateAsync(candidate, force: false, refuseWarnings: true, cancellationToken);
        return outcome.State switch
        {
            ActivationState.Activated => new SweepPromotion(true, []),
            ActivationState.Refused => new SweepPromotion(false, [.. outcome.Decision!.Reasons.Select(r => $"{r.Code}: {r.Detail}")]),
            ActivationState.Warned => new SweepPromotion(false, [.. candidate.Metadata.Warnings ?? []]),
            ActivationState.CannotLoad => new SweepPromotion(false, [$"{what} cannot be loaded: {outcome.Cause}"]),
            _ => new SweepPromotion(false, [$"{what} is no longer stored."]),
        };
    }

    private IEnumerable<SweepRecord> Safe(Func<IEnumerable<SweepRecord>> list)
    {
        try
        {
            return list().ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogListFailed(logger, ex.Message);
            return [];
        }
    }

    private static async Task<bool> Next(PeriodicTimer timer, CancellationToken token)
    {
        try
        {
            return await timer.WaitForNextTickAsync(token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sweep {SweepId}: ended, {Best}; {Activation}")]
    private static partial void LogEnded(ILogger logger, string sweepId, string best, string activation);

    [LoggerMessage(Level = LogLevel.Error, Message = "Sweep {SweepId}: ending it failed; it is tried again")]
    private static partial void LogEndFailed(ILogger logger, Exception exception, string sweepId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeps cannot be listed: {Reason}")]
    private static partial void LogListFailed(ILogger logger, string reason);
}
