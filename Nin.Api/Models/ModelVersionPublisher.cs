using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using Nin.Model.Onnx;

namespace Nin.Api.Models;

/// <summary>The evaluation a new version comes with: the confusion matrix and per-image predictions of its last test pass.</summary>
public sealed record VersionEvaluation(ModelEvaluation Evaluation, TestPredictions Predictions);

/// <summary>
/// The one way a model version is born, whether trained here, imported from PyTorch or safetensors weights, or seeded
/// from the model shipped with the service. In this order: (1) the store keeps it (weights and metadata, atomically);
/// (2) the ONNX file ONNX Runtime serves is written from the network in memory (no read back from disk), so replicas
/// only open it when they swap; (3) its evaluation, when it comes with one (training's last test pass, the shipped
/// model's file), is stored beside it; (4) its warnings are logged; (5) the activation rule: a version with warnings
/// (it learned nothing) is never activated automatically, unless it is a seeded folder an operator chose to serve (the
/// shipped model, a KServe storageUri); otherwise it is when asked, or when nothing is served yet. When asked while
/// another version is served, the promotion gate (<see cref="ModelPromotion"/>) decides first: a refused version stays
/// stored and not activated, and the caller is told why (a training job records it as a warning; it does not fail).
/// Steps 2–3 failing leaves a stored, usable version (logged; ONNX is then exported on first load, the evaluation can
/// be redone with POST .../evaluate). Between 2 and 3, a version whose training images are at hand gets its int8 model
/// (the caller's <c>prepare</c> step: <see cref="VersionQuantizer"/>), the shipped one is given its int8 file back from
/// its record; either failing leaves a version that serves fp32.
/// </summary>
public sealed partial class ModelVersionPublisher(ModelStore store, ModelPromotion promotion, ILogger<ModelVersionPublisher> logger)
{
    /// <summary>
    /// Stores <paramref name="network"/> as the next version of <paramref name="metadata"/>'s name and takes it through
    /// the steps above. <paramref name="stored"/> runs right after step 1 (a training job records the version there, so a
    /// resumed run does not store it twice). The caller keeps owning (and disposes) the network. <paramref name="gated"/>
    /// gets the promotion gate's decision when <paramref name="activate"/> asked for one that the gate judged.
    /// <paramref name="mayActivate"/> false (a sweep's trial): stored, never activated, not even when nothing is served.
    /// </summary>
    public async Task<ModelVersionInfo> AddAsync(
        ImageClassifier network, ModelMetadata metadata, bool activate, VersionEvaluation? evaluation = null,
        Action<ModelVersionInfo>? stored = null, Func<ModelVersionInfo, Task>? prepare = null,
        Action<PromotionDecision>? gated = null, CancellationToken cancellationToken = default, bool mayActivate = true)
    {
        var info = store.Add(network, metadata, activate: false, activateIfNoneActive: false);
        stored?.Invoke(info);
        ExportOnnx(info, () => OnnxExporter.Export(network, info.Metadata));
        if (prepare is not null)
        {
            await prepare(info); // before activation, so the first load serves what was prepared
        }

        SaveEvaluation(info, evaluation);
        if (!mayActivate)
        {
            return Complete(info, activate: false, evaluation: null, chosen: false, mayActivate: false);
        }

        if (activate && info.Metadata.Warnings is not { Count: > 0 } && promotion.Options.Enabled && store.Active is not null)
        {
            var decision = await promotion.DecideAsync(info, evaluateMissing: true, cancellationToken);
            gated?.Invoke(decision);
            if (!decision.Allowed)
            {
                LogRefused(logger, info.Name, info.Version, string.Join(" ", decision.Reasons.Select(r => r.Detail)));
                return info;
            }
        }

        return Complete(info, activate, evaluation: null);
    }

    /// <summary>
    /// Seeds the store with a shipped checkpoint folder (weights, metadata and, shipped beside them, its evaluation) and
    /// takes it through the same steps; the ONNX file is exported from the one network loaded for it.
    /// </summary>
    public ModelVersionInfo Seed(string checkpointDirectory)
    {
        var info = store.Import(checkpointDirectory, activate: false);
        ExportOnnx(info, () =>
        {
            var (network, metadata) = Checkpoint.Load(info.Directory);
            using (network)
            {
                return OnnxExporter.Export(network, metadata);
            }
        });
        RestoreInt8(info);
        return Complete(info, activate: false, evaluation: null, chosen: true);
    }

    // The shipped model travels with its int8 record (calibrated ranges and measured accuracy), not the int8 file: the
    // file is made here, once, from its weights and those ranges (docs/int8.md).
    private void RestoreInt8(ModelVersionInfo info)
    {
        try
        {
            if (!Int8Cache.Restore(info.Directory) && File.Exists(Path.Combine(info.Directory, Int8Cache.RecordFile)))
            {
                LogInt8NotRestored(logger, info.Name, info.Version, "its int8 graph differs from the one measured; quantize it again");
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogInt8NotRestored(logger, info.Name, info.Version, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version} serves fp32 only: {Reason}")]
    private static partial void LogInt8NotRestored(ILogger logger, string model, int version, string reason);

    // chosen: an operator picked this very checkpoint to serve (the shipped folder, a KServe storageUri), so its
    // warnings are logged but do not keep it from being served when nothing else is.
    private ModelVersionInfo Complete(ModelVersionInfo info, bool activate, VersionEvaluation? evaluation, bool chosen = false, bool mayActivate = true)
    {
        SaveEvaluation(info, evaluation);
        var warnings = LogWarnings(info, chosen);
        if (mayActivate && (warnings.Count == 0 || chosen) && (activate || store.Active is null) && store.Activate(info.Name, info.Version))
        {
            LogActivated(logger, info.Name, info.Version, activate ? "asked for" : "nothing was served");
            return store.Find(info.Name, info.Version) ?? info with { Active = true };
        }

        return info;
    }

    private void SaveEvaluation(ModelVersionInfo info, VersionEvaluation? evaluation)
    {
        if (evaluation is null)
        {
            return;
        }

        try
        {
            EvaluationFiles.Save(info.Directory, evaluation.Evaluation with { Classes = info.Metadata.ClassNames }, evaluation.Predictions);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogNotEvaluated(logger, info.Name, info.Version, ex.Message);
        }
    }

    private IReadOnlyList<string> LogWarnings(ModelVersionInfo info, bool chosen)
    {
        var warnings = info.Metadata.Warnings ?? [];
        foreach (var warning in warnings)
        {
            if (chosen)
            {
                LogChosenWarning(logger, info.Name, info.Version, warning);
            }
            else
            {
                LogWarning(logger, info.Name, info.Version, warning);
            }
        }

        return warnings;
    }

    // The ONNX file ONNX Runtime serves, written once here before the version can be activated: every API replica then
    // only opens it when it swaps, instead of each exporting it at the same moment.
    private void ExportOnnx(ModelVersionInfo info, Func<byte[]> export)
    {
        var path = Path.Combine(info.Directory, OnnxCache.FileName(info.Metadata));
        if (File.Exists(path))
        {
            return;
        }

        try
        {
            DurableFile.Write(path, export());
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogNotExported(logger, info.Name, info.Version, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: no ONNX file was prepared ({Reason}); a replica serving it with ONNX Runtime exports it when it loads")]
    private static partial void LogNotExported(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version} was stored but its evaluation was not: {Reason}")]
    private static partial void LogNotEvaluated(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: {Warning} It was seeded from a chosen folder, so it is served anyway.")]
    private static partial void LogChosenWarning(ILogger logger, string model, int version, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: {Warning} It is stored but not activated automatically.")]
    private static partial void LogWarning(ILogger logger, string model, int version, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version} is stored but not activated: the promotion gate refused it. {Reasons}")]
    private static partial void LogRefused(ILogger logger, string model, int version, string reasons);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} version {Version} is now served ({Why})")]
    private static partial void LogActivated(ILogger logger, string model, int version, string why);
}
