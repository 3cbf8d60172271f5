using System.ComponentModel;
using Hangfire;
using Nin.Api.Datasets;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Training;

/// <summary>
/// The Hangfire job that trains one NiN: one at a time on the <c>training</c> queue, no automatic
/// retries, an epoch checkpoint after every epoch to resume from after a restart.
/// </summary>
[Queue(TrainingJob.Queue)]
// Retried only when PostgreSQL (the shared job records) was unreachable: the run resumes from its last epoch checkpoint.
// Anything else ends the job Failed, as before.
[AutomaticRetry(Attempts = 10, DelaysInSeconds = [5, 10, 20, 30, 60, 60, 60, 60, 60, 60], OnlyOn = [typeof(Npgsql.NpgsqlException)], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class TrainingJob(
    ITrainingJobStore jobs,
    DatasetCatalog datasets,
    ModelStore models,
    TrainingNotifier notifier,
    JobCancellation cancellation,
    Models.ModelEvaluator evaluator,
    Models.VersionQuantizer quantizer,
    Microsoft.Extensions.Options.IOptions<NinOptions> folders,
    ILogger<TrainingJob> logger)
{
    public const string Queue = "training";

    [DisplayName("Train NiN (job {0})")]
    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        using var logScope = logger.BeginScope("JobId:{JobId}", jobId);
        var job = jobs.Get(jobId);
        if (job is null || job.Status is JobStatus.Cancelled or JobStatus.Succeeded or JobStatus.Failed)
        {
            LogSkipped(logger, jobId, job?.Status.ToString() ?? "unknown");
            return;
        }

        using var cts = cancellation.Register(jobId, cancellationToken);
        try
        {
            var settings = job.Request;
            var device = TorchRuntime.ResolveDevice(settings.Device);

            // Compare-and-set: only a job that is still queued (or was running when a crash interrupted it) starts;
            // a DELETE that cancelled it since it was read above wins.
            // Running here becomes this process's job: a worker that took longer than the invisibility timeout to renew
            // its hold (paused, cut off) finds it taken over and stops without touching it again (see Owned).
            var running = jobs.Update(jobId, j => j.Status is JobStatus.Queued or JobStatus.Running
                ? j with { Status = JobStatus.Running, Device = device.ToString(), StartedAt = j.StartedAt ?? DateTimeOffset.UtcNow, Error = null, Worker = WorkerIdentity.Current }
                : null);
            if (running is null)
            {
                LogSkipped(logger, jobId, jobs.Get(jobId)?.Status.ToString() ?? "unknown");
                return;
            }

            Publish(running);
            if (running.ModelName is { } storedName && running.ModelVersion is { } storedVersion && models.Find(storedName, storedVersion) is { } earlier)
            {
                // Interrupted after its model was stored (a crash during evaluation or clean-up): finish, do not train or store again.
                LogAlreadyStored(logger, jobId, storedName, storedVersion);
                Finish(jobId, earlier, earlier.Metadata.Warnings ?? []);
                return;
            }

            LogStarted(logger, jobId, settings.Dataset, device.ToString(), settings.Epochs, settings.ImageSize);

            var data = await datasets.LoadAsync(settings.Dataset, settings.MaxTrainImages, settings.MaxTestImages, cts.Token);
            // Its own thread: its OpenMP team is the only multi-threaded one besides serving's, and goes away with it.
            var result = await TorchRuntime.RunOnOwnThread($"nin-train-{jobId}", () => Train(jobId, settings, data, device, cts.Token));
            EnsureOwned(jobId);

            // A model that learned nothing is stored for inspection but never served automatically.
            var warnings = result.Metadata.Warnings ?? [];
            var learned = warnings.Count == 0;
            var stored = models.Add(result.Network, result.Metadata, activate: false, activateIfNoneActive: false);
            result.Network.Dispose();
            Owned(jobId, j => j with { ModelName = stored.Name, ModelVersion = stored.Version }); // a resumed run finds it stored
            PrepareForServing(stored);
            await quantizer.TryQuantizeAsync(stored, data, cts.Token); // its int8 model, before it can be activated
            if (learned && (settings.Activate || models.Active is null))
            {
                models.Activate(stored.Name, stored.Version);
            }

            await EvaluateAsync(jobId, stored, data.Test, cts.Token);
            Finish(jobId, stored, warnings);
        }
        catch (JobTakenOverException)
        {
            // Another worker runs it now (from the checkpoint): its record and checkpoint are that worker's. Hangfire's
            // job is that worker's too: ending normally here would mark it Succeeded under it (and abort that worker),
            // so this attempt ends as aborted, which changes no state and leaves the queue entry to its new holder.
            LogTakenOver(logger, jobId, jobs.Get(jobId)?.Worker ?? "-");
            throw new Hangfire.Server.JobAbortedException();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The server is shutting down (or Hangfire aborted this attempt): leave the job queued if it is still this
            // process's; it resumes from its last epoch checkpoint.
            var queued = jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current ? j with { Status = JobStatus.Queued, Progress = j.Progress with { Batch = 0 } } : null);
            if (queued is null)
            {
                LogTakenOver(logger, jobId, jobs.Get(jobId)?.Worker ?? "-");
            }
            else
            {
                Publish(queued);
                LogInterrupted(logger, jobId);
            }

            throw;
        }
        catch (OperationCanceledException)
        {
            var cancelled = jobs.Update(jobId, j => j.Status == JobStatus.Running && j.Worker != WorkerIdentity.Current ? null : j with { Status = JobStatus.Cancelled, FinishedAt = DateTimeOffset.UtcNow });
            if (cancelled is null)
            {
                LogTakenOver(logger, jobId, jobs.Get(jobId)?.Worker ?? "-");
                return;
            }

            DeleteCheckpoint(jobId);
            Publish(cancelled);
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Cancelled, null, null, null));
            LogCancelled(logger, jobId);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            // The job records are out of reach: the job is neither failed nor finished. Hangfire retries it (above) and
            // the run resumes from its checkpoint once PostgreSQL answers.
            LogStorageLost(logger, jobId, ex.GetBaseException().Message);
            throw;
        }
        catch (Exception ex)
        {
            var error = ClientErrors.Describe(ex, folders.Value); // no exception text or server paths reach clients
            var failed = jobs.Update(jobId, j => j.Status == JobStatus.Running && j.Worker != WorkerIdentity.Current ? null : j with { Status = JobStatus.Failed, Error = error, FinishedAt = DateTimeOffset.UtcNow });
            if (failed is null)
            {
                LogTakenOver(logger, jobId, jobs.Get(jobId)?.Worker ?? "-");
                return;
            }

            Publish(failed);
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Failed, null, null, error));
            LogFailed(logger, ex, jobId, error);
        }
        finally
        {
            cancellation.Unregister(jobId);
        }
    }

    private void Finish(string jobId, ModelVersionInfo stored, IReadOnlyList<string> warnings)
    {
        DeleteCheckpoint(jobId);
        var done = Owned(jobId, j => j with { Status = JobStatus.Succeeded, ModelName = stored.Name, ModelVersion = stored.Version, FinishedAt = DateTimeOffset.UtcNow, Warnings = warnings });
        Publish(done);
        notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Succeeded, stored.Name, stored.Version, null, warnings));
        foreach (var warning in warnings)
        {
            LogWarning(logger, jobId, warning);
        }

        LogSucceeded(logger, jobId, stored.Name, stored.Version, stored.Metadata.Metrics?.TestAccuracy ?? 0);
    }

    private (ImageClassifier Network, ModelMetadata Metadata) Train(string jobId, TrainSettings settings, Model.Data.DatasetSplit data, Device device, CancellationToken cancellationToken)
    {
        var options = new TrainingOptions
        {
            Recipe = settings.Recipe,
            Schedule = LearningRateSchedules.Parse(settings.Schedule) ?? LearningRateSchedule.Constant,
            Shift = settings.Shift,
            Flip = settings.Flip,
            LabelSmoothing = settings.LabelSmoothing,
            Epochs = settings.Epochs,
            BatchSize = settings.BatchSize,
            LearningRate = settings.LearningRate,
            Momentum = settings.Momentum,
            WeightDecay = settings.WeightDecay,
            ImageSize = settings.ImageSize,
            Seed = settings.Seed,
        };

        manual_seed(settings.Seed);
        var network = NetworkArchitectures.Get(settings.Architecture).Create(data.Train.Channels, data.Train.ClassNames.Count);
        try
        {
            using var trainer = new Trainer(network, data, options, device);
            var checkpointDir = Path.Combine(jobs.JobDirectory(jobId), "checkpoint");
            var resume = EpochCheckpoint.Read(checkpointDir);
            if (resume is not null)
            {
                LogResuming(logger, jobId, resume.CompletedEpochs);
                Publish(jobs.Update(jobId, j => j with { ResumedAfterEpoch = resume.CompletedEpochs, Epochs = resume.History }));
            }

            var observer = new Observer(this, notifier, logger, jobId, settings.Epochs);
            var metrics = trainer.Run(observer, cancellationToken, resume, (epoch, optimizer) =>
            {
                EnsureOwned(jobId); // never overwrite the checkpoint of a worker that took the job over
                EpochCheckpoint.Save(checkpointDir, epoch, network, optimizer, trainer.History);
            });
            var described = TrainedModel.Describe(settings.ModelName, data, options, metrics.Epochs, device.ToString());
            var metadata = described with { Recipe = described.Recipe! with { Dataset = settings.Dataset } };
            network.to(CPU);
            return (network, metadata);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    private sealed class Observer(TrainingJob owner, TrainingNotifier notifier, ILogger logger, string jobId, int epochs) : ITrainingObserver
    {
        public void OnBatch(BatchProgress progress)
        {
            owner.Owned(jobId, j => j with { Progress = new JobProgress(progress.Epoch, progress.Batch, progress.Batches) }, persist: false);
            notifier.BatchProgress(new BatchProgressEvent(jobId, progress.Epoch, progress.Batch, progress.Batches, progress.Loss));
        }

        public void OnEpoch(EpochMetrics metrics)
        {
            notifier.JobUpdated(owner.Owned(jobId, j => j with { Epochs = [.. j.Epochs.Where(e => e.Epoch < metrics.Epoch), metrics] }));
            notifier.EpochCompleted(new EpochCompletedEvent(jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond, metrics.Seconds));
            LogEpoch(logger, jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond);
        }
    }

    /// <summary>Applies a change to the job's record while this process runs it; otherwise stops the run (<see cref="JobTakenOverException"/>).</summary>
    private JobSnapshot Owned(string jobId, Func<JobSnapshot, JobSnapshot> change, bool persist = true) =>
        jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current ? change(j) : null, persist) ?? throw new JobTakenOverException(jobId);

    private void EnsureOwned(string jobId)
    {
        if (jobs.Get(jobId)?.Worker != WorkerIdentity.Current)
        {
            throw new JobTakenOverException(jobId);
        }
    }

    /// <summary>
    /// The confusion matrix and per-class figures of the stored version, from a fresh copy of it on the test split
    /// already loaded. The model is stored either way: a failed or cancelled evaluation is logged, and can be redone
    /// by POST /models/{name}/versions/{version}/evaluate.
    /// </summary>
    private async Task EvaluateAsync(string jobId, ModelVersionInfo stored, Model.Data.ImageDataset test, CancellationToken cancellationToken)
    {
        try
        {
            var evaluation = await evaluator.EvaluateAsync(stored, test, cancellationToken);
            LogEvaluated(logger, jobId, stored.Name, stored.Version, evaluation.Accuracy);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogNotEvaluated(logger, jobId, stored.Name, stored.Version, ex.Message);
        }
    }

    // The ONNX file ONNX Runtime serves, written once here before the version can be activated: every API replica then
    // only opens it when it swaps, instead of each exporting it at the same moment.
    private void PrepareForServing(ModelVersionInfo stored)
    {
        try
        {
            Model.Onnx.OnnxCache.Ensure(stored.Directory);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogNotExported(logger, stored.Name, stored.Version, ex.Message);
        }
    }

    private void DeleteCheckpoint(string jobId)
    {
        var dir = Path.Combine(jobs.JobDirectory(jobId), "checkpoint");
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private void Publish(JobSnapshot? snapshot)
    {
        if (snapshot is not null)
        {
            notifier.JobUpdated(snapshot);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: training on {Dataset} on {Device}, {Epochs} epochs at {ImageSize} px")]
    private static partial void LogStarted(ILogger logger, string jobId, string dataset, string device, int epochs, int imageSize);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: epoch {Epoch}/{Epochs} loss {Loss:F4} train acc {TrainAccuracy:F3} test acc {TestAccuracy:F3} ({ExamplesPerSecond:F0} img/s)")]
    private static partial void LogEpoch(ILogger logger, string jobId, int epoch, int epochs, double loss, double trainAccuracy, double testAccuracy, double examplesPerSecond);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: resuming after epoch {Epoch}")]
    private static partial void LogResuming(ILogger logger, string jobId, int epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: stored model {Model} version {Version}, test accuracy {TestAccuracy:F4}")]
    private static partial void LogSucceeded(ILogger logger, string jobId, string model, int version, double testAccuracy);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: evaluated {Model} version {Version}, accuracy {Accuracy:F4}")]
    private static partial void LogEvaluated(ILogger logger, string jobId, string model, int version, double accuracy);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: {Model} version {Version} was stored but not evaluated: {Reason}")]
    private static partial void LogNotEvaluated(ILogger logger, string jobId, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} version {Version}: no ONNX file was prepared ({Reason}); a replica serving it with ONNX Runtime exports it when it loads")]
    private static partial void LogNotExported(ILogger logger, string model, int version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: {Warning}")]
    private static partial void LogWarning(ILogger logger, string jobId, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: taken over by worker {Worker} (this one did not renew its hold within the invisibility timeout); stopping here without touching its record or checkpoint")]
    private static partial void LogTakenOver(ILogger logger, string jobId, string worker);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: its model {Model} version {Version} was stored before an interruption; finishing without training again")]
    private static partial void LogAlreadyStored(ILogger logger, string jobId, string model, int version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: PostgreSQL unreachable ({Reason}); Hangfire retries it and it resumes from its last checkpoint")]
    private static partial void LogStorageLost(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: cancelled")]
    private static partial void LogCancelled(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: interrupted by shutdown; it resumes from its last epoch checkpoint")]
    private static partial void LogInterrupted(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: not run, it is {Status}")]
    private static partial void LogSkipped(ILogger logger, string jobId, string status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId, string error);
}
