using System.ComponentModel;
using Hangfire;
using Nin.Api.Datasets;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;
using Nin.Model.Evaluation;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using Nin.Api.Sweeps;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Training;

/// <summary>
/// The Hangfire job that trains one NiN: one at a time on the <c>training</c> queue, an epoch checkpoint after every
/// epoch to resume from after a restart. Its record says what Hangfire decided too (<see cref="JobStateReconciler"/>).
/// </summary>
[Queue(TrainingJob.Queue)]
// Hangfire's own retry-everything default is off: a run is retried only when PostgreSQL (the shared job records) was
// unreachable, as Training:StorageRetries and StorageRetryDelays say (JobStateReconciler applies them); anything else
// ends the job Failed at once, with the reason.
[AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class TrainingJob(
    ITrainingJobStore jobs,
    DatasetCatalog datasets,
    ModelStore models,
    Models.ModelVersionPublisher publisher,
    TrainingNotifier notifier,
    JobCancellation cancellation,
    TrainingMemoryProbe memory,
    Models.VersionQuantizer quantizer,
    Sweeps.TrialJudge judge,
    Microsoft.Extensions.Options.IOptions<NinOptions> folders,
    ILogger<TrainingJob> logger)
{
    public const string Queue = "training";

    [DisplayName("Train NiN (job {0})")]
    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        using var logScope = logger.BeginScope("JobId:{JobId}", jobId);
        var job = jobs.Get(jobId);
        if (job is null || job.IsFinished)
        {
            LogSkipped(logger, jobId, job?.Status.ToString() ?? "unknown");
            return;
        }

        using var cts = cancellation.Register(jobId, cancellationToken);
        try
        {
            var settings = job.Request;

            // Compare-and-set: only a job that is still queued (or was running when a crash interrupted it) starts;
            // a DELETE that cancelled it since it was read above wins.
            // Running here becomes this process's job: a worker that took longer than the invisibility timeout to renew
            // its hold (paused, cut off) finds it taken over and stops without touching it again (see Owned).
            var running = jobs.Update(jobId, j => j.Status is JobStatus.Queued or JobStatus.Running
                ? j with { Status = JobStatus.Running, StartedAt = j.StartedAt ?? DateTimeOffset.UtcNow, Error = null, Worker = WorkerIdentity.Current }
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

            // Admission again, here, where it runs: the device this worker resolves (Torch:Device for "auto") and the memory
            // free now. What was free when the job was queued may not be now.
            var device = WorkerDevices.Resolve(settings.Device);
            Publish(Owned(jobId, j => j with { Device = device.ToString() }));
            if (WorkerAdmission.AdmitHere(settings, device.ToString(), memory) is { } refused)
            {
                throw new JobRefusedException(refused);
            }

            LogStarted(logger, jobId, settings.Dataset, device.ToString(), settings.Epochs, settings.ImageSize);

            var data = await datasets.LoadAsync(settings.Dataset, settings.MaxTrainImages, settings.MaxTestImages, cts.Token);
            EnsureSpace(jobId, settings, data);

            // Its own thread: its OpenMP team is the only multi-threaded one besides serving's, and goes away with it.
            var result = await TorchRuntime.RunOnOwnThread($"nin-train-{jobId}", () => Train(jobId, settings, data, device, cts.Token));
            ModelVersionInfo stored;
            PromotionDecision? notPromoted = null;
            try
            {
                EnsureOwned(jobId);
                var evaluation = result.TestPass is { } pass
                    ? new Models.VersionEvaluation(ModelEvaluation.FromPredictions(result.Metadata.ClassNames, pass, settings.Dataset), pass)
                    : null;

                // Store, ONNX from this network, evaluation from the last test pass, activation rule and promotion gate:
                // ModelVersionPublisher. A version the gate refuses stays stored; the job still succeeds, saying why.
                stored = await StoreVersionAsync(jobId, result, settings, evaluation, data, d => notPromoted = d.Allowed ? null : d, cts.Token);
            }
            finally
            {
                result.Network.Dispose();
            }

            IReadOnlyList<string> warnings = stored.Metadata.Warnings ?? [];
            if (notPromoted is not null)
            {
                warnings = [.. warnings, NotPromoted(stored, notPromoted)];
                LogNotPromoted(logger, jobId, stored.Name, stored.Version);
            }

            Finish(jobId, stored, warnings);
        }
        catch (JobNotOursException)
        {
            Stopped(jobId);
        }
        catch (TrialStoppedException stop)
        {
            EndTrialEarly(jobId, stop.Reason);
        }
        catch (TrainingDivergedException diverged) when (job.Request.SweepId is not null)
        {
            // A sweep's diverging trial is what early stopping is for: it ends Stopped, the sweep goes on.
            EndTrialEarly(jobId, $"diverged: {diverged.Message}");
        }
        catch (OperationCanceledException) when (!cancellation.WasRequested(jobId) && cancellationToken.IsCancellationRequested)
        {
            // The server is shutting down (or Hangfire took this attempt away: requeued or deleted in /hangfire): leave
            // the job queued if it is still this process's and running; it resumes from its last epoch checkpoint. A job
            // deleted in Hangfire is already Cancelled in its record (JobStateReconciler).
            var queued = jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current && j.Status == JobStatus.Running
                ? j with { Status = JobStatus.Queued, Progress = j.Progress with { Batch = 0 } }
                : null);
            if (queued is null)
            {
                Stopped(jobId);
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
            var cancelled = jobs.Update(jobId, j => !j.IsFinished && (j.Worker is null || j.Worker == WorkerIdentity.Current)
                ? j with { Status = JobStatus.Cancelled, FinishedAt = DateTimeOffset.UtcNow }
                : null);
            if (cancelled is null)
            {
                Stopped(jobId);
                return;
            }

            DeleteCheckpoint(jobId);
            Publish(cancelled);
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Cancelled, null, null, null, Revision: cancelled.Revision));
            LogCancelled(logger, jobId);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            // The job records are out of reach: the job is neither failed nor finished. Hangfire retries it (above) and
            // the run resumes from its checkpoint once PostgreSQL answers; when the retries run out, JobStateReconciler
            // records the failure Hangfire decides.
            LogStorageLost(logger, jobId, ex.GetBaseException().Message);
            throw;
        }
        catch (Exception ex)
        {
            // No exception text or server paths reach clients; a full disk says what it needed and had.
            var error = ex is InsufficientStorageException or JobRefusedException ? ex.Message : ClientErrors.Describe(ex, folders.Value);
            var failed = jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current && !j.IsFinished
                ? j with { Status = JobStatus.Failed, Error = error, FinishedAt = DateTimeOffset.UtcNow }
                : null);
            if (failed is null)
            {
                Stopped(jobId);
                return;
            }

            Publish(failed);
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Failed, null, null, error, Revision: failed.Revision));
            LogFailed(logger, ex, jobId, error);
        }
        finally
        {
            cancellation.Unregister(jobId);
            NativeHeap.Trim(); // hand what libtorch freed during the run back to the system (see NativeHeap)
        }
    }

    /// <summary>
    /// The record no longer names this run: another worker took it over (its record, checkpoint and Hangfire job are that
    /// worker's), or Hangfire ended it (deleted in /hangfire: Cancelled). Nothing of it is touched but a cancelled job's
    /// checkpoint; the attempt ends as aborted, which changes no Hangfire state (ending normally would mark it Succeeded
    /// under its new holder).
    /// </summary>
    private void Stopped(string jobId)
    {
        var record = jobs.Get(jobId);
        if (record is { Status: JobStatus.Cancelled })
        {
            DeleteCheckpoint(jobId);
            LogEndedElsewhere(logger, jobId, record.Status.ToString());
        }
        else if (record is not null && record.IsFinished)
        {
            LogEndedElsewhere(logger, jobId, record.Status.ToString());
        }
        else
        {
            LogTakenOver(logger, jobId, record?.Worker ?? "-");
        }

        throw new Hangfire.Server.JobAbortedException();
    }

    /// <summary>A sweep's trial ends Stopped with the reason; its checkpoint goes, it stores no model.</summary>
    private void EndTrialEarly(string jobId, string reason)
    {
        var stopped = jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current && j.Status == JobStatus.Running
            ? j with { Status = JobStatus.Stopped, StopReason = reason, FinishedAt = DateTimeOffset.UtcNow }
            : null);
        if (stopped is null)
        {
            Stopped(jobId);
            return;
        }

        DeleteCheckpoint(jobId);
        Publish(stopped);
        notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Stopped, null, null, null, Revision: stopped.Revision, StopReason: reason));
        LogTrialStopped(logger, jobId, stopped.Request.SweepId ?? "-", reason);
    }

    /// <summary>The job's warning for a version the promotion gate kept from being activated: the gate's reasons and how to override them.</summary>
    public static string NotPromoted(ModelVersionInfo stored, PromotionDecision decision) =>
        $"not activated: the promotion gate refused {stored.Name} version {stored.Version} ({string.Join(", ", decision.Reasons.Select(r => r.Code))}). "
        + $"{string.Join(" ", decision.Reasons.Select(r => r.Detail))} It is stored; POST /models/{stored.Name}/versions/{stored.Version}/activate?force=true (admin scope) activates it anyway.";

    private async Task<ModelVersionInfo> StoreVersionAsync(
        string jobId, TrainingResult result, TrainSettings settings, Models.VersionEvaluation? evaluation, Model.Data.DatasetSplit data,
        Action<PromotionDecision> gated, CancellationToken cancellationToken)
    {
        try
        {
            // A resumed run finds the version recorded right after it is stored, and does not store it twice; its int8
            // model is made from its own training images before it can be activated.
            // A sweep's trial is never activated here, not even when nothing is served: its sweep activates its best trial.
            return await publisher.AddAsync(result.Network, result.Metadata, settings.Activate, evaluation,
                stored => Owned(jobId, j => j with { ModelName = stored.Name, ModelVersion = stored.Version }),
                stored => quantizer.TryQuantizeAsync(stored, data, cancellationToken),
                gated, cancellationToken, mayActivate: settings.SweepId is null);
        }
        catch (Exception ex) when (DurableFile.IsDiskFull(ex))
        {
            throw InsufficientStorageException.From(ex, "the model version", models.Root, RunFootprint.ModelBytes(result.Metadata.Architecture, result.Metadata.InputChannels, result.Metadata.ClassNames.Count, 0));
        }
    }

    private void Finish(string jobId, ModelVersionInfo stored, IReadOnlyList<string> warnings)
    {
        DeleteCheckpoint(jobId);
        var done = Owned(jobId, j => j with { Status = JobStatus.Succeeded, ModelName = stored.Name, ModelVersion = stored.Version, FinishedAt = DateTimeOffset.UtcNow, Warnings = warnings });
        Publish(done);
        notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Succeeded, stored.Name, stored.Version, null, warnings, done.Revision));
        LogSucceeded(logger, jobId, stored.Name, stored.Version, stored.Metadata.Metrics?.TestAccuracy ?? 0);
    }

    /// <summary>
    /// Before training: room for what the run will write, so it fails now, naming the cause, instead of after its first
    /// epoch. The epoch checkpoint (weights, optimizer state; two copies while one replaces the other) in the work folder,
    /// the model version (weights, ONNX file, evaluation) in the models folder.
    /// </summary>
    private void EnsureSpace(string jobId, TrainSettings settings, Model.Data.DatasetSplit data)
    {
        var channels = data.Train.Channels;
        var classes = data.Train.ClassNames.Count;
        DiskSpace.Ensure(jobs.JobDirectory(jobId), RunFootprint.CheckpointBytes(settings.Architecture, channels, classes, settings.Momentum), "the run's epoch checkpoints");
        DiskSpace.Ensure(models.Root, RunFootprint.ModelBytes(settings.Architecture, channels, classes, data.Test.Count), "the run's model version");
    }

    private TrainingResult Train(string jobId, TrainSettings settings, Model.Data.DatasetSplit data, Device device, CancellationToken cancellationToken)
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
        NetworkCreated?.Invoke(jobId, network);
        try
        {
            using var trainer = new Trainer(network, data, options, device);
            var checkpointDir = Path.Combine(jobs.JobDirectory(jobId), "checkpoint");
            var resume = EpochCheckpoint.Read(checkpointDir);
            if (resume is not null)
            {
                LogResuming(logger, jobId, resume.CompletedEpochs);
                Publish(Owned(jobId, j => j with { ResumedAfterEpoch = resume.CompletedEpochs, Epochs = resume.History }));
            }

            var observer = new Observer(this, notifier, logger, jobId, settings.Epochs, judge);
            var metrics = trainer.Run(observer, cancellationToken, resume, (epoch, optimizer) =>
            {
                EnsureOwned(jobId); // never overwrite the checkpoint of a worker that took the job over
                try
                {
                    EpochCheckpoint.Save(checkpointDir, epoch, network, optimizer, trainer.History);
                }
                catch (Exception ex) when (DurableFile.IsDiskFull(ex))
                {
                    throw InsufficientStorageException.From(ex, $"the epoch {epoch} checkpoint", checkpointDir,
                        RunFootprint.CheckpointBytes(settings.Architecture, data.Train.Channels, data.Train.ClassNames.Count, settings.Momentum));
                }

                EpochSaved?.Invoke(jobId, epoch, cancellationToken);
            });
            var described = TrainedModel.Describe(settings.ModelName, data, options, metrics.Epochs, device.ToString());
            var metadata = described with { Recipe = described.Recipe! with { Dataset = settings.Dataset } };

            // The evaluation comes from the last epoch's test pass (the finished weights); only a run resumed after its
            // last epoch has none and makes one pass now.
            if (trainer.LastTestPass is null)
            {
                trainer.Evaluate(cancellationToken);
            }

            network.to(CPU);
            return new TrainingResult(network, metadata, trainer.LastTestPass);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Raised on the training thread after each epoch's checkpoint is on disk, with the run's token (diagnostics: the tests
    /// hold a run there until its worker stops, to leave what a killed worker leaves whatever the speed of the machine).
    /// </summary>
    internal static event Action<string, int, CancellationToken>? EpochSaved;

    /// <summary>Raised with every network a run creates (diagnostics: the tests check each is disposed however its run ends).</summary>
    internal static event Action<string, ImageClassifier>? NetworkCreated;

    private sealed record TrainingResult(ImageClassifier Network, ModelMetadata Metadata, TestPredictions? TestPass);

    private sealed class Observer(TrainingJob owner, TrainingNotifier notifier, ILogger logger, string jobId, int epochs, Sweeps.TrialJudge judge) : ITrainingObserver
    {
        public void OnBatch(BatchProgress progress)
        {
            var snapshot = owner.Owned(jobId, j => j with { Progress = new JobProgress(progress.Epoch, progress.Batch, progress.Batches) }, persist: false);
            notifier.BatchProgress(new BatchProgressEvent(jobId, progress.Epoch, progress.Batch, progress.Batches, progress.Loss, snapshot.Revision));
        }

        public void OnEpoch(EpochMetrics metrics)
        {
            var snapshot = owner.Owned(jobId, j => j with { Epochs = [.. j.Epochs.Where(e => e.Epoch < metrics.Epoch), metrics] });
            notifier.JobUpdated(snapshot);
            notifier.EpochCompleted(new EpochCompletedEvent(jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond, metrics.Seconds, snapshot.Revision));
            LogEpoch(logger, jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond);

            // A sweep's trial: its rule judges it against the other trials at this epoch (their job records).
            if (judge.Judge(snapshot) is { } verdict)
            {
                throw new TrialStoppedException(verdict.Reason);
            }
        }
    }

    /// <summary>
    /// Applies a change to the job's record while this process runs it (the record is Running and names this worker);
    /// otherwise stops the run (<see cref="JobNotOursException"/>).
    /// </summary>
    private JobSnapshot Owned(string jobId, Func<JobSnapshot, JobSnapshot> change, bool persist = true) =>
        jobs.Update(jobId, j => j.Worker == WorkerIdentity.Current && j.Status == JobStatus.Running ? change(j) : null, persist) ?? throw new JobNotOursException(jobId);

    private void EnsureOwned(string jobId)
    {
        if (jobs.Get(jobId) is not { Status: JobStatus.Running } record || record.Worker != WorkerIdentity.Current)
        {
            throw new JobNotOursException(jobId);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: taken over by worker {Worker} (this one did not renew its hold within the invisibility timeout); stopping here without touching its record or checkpoint")]
    private static partial void LogTakenOver(ILogger logger, string jobId, string worker);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: ended elsewhere ({Status} in its record, as Hangfire decided); stopping here")]
    private static partial void LogEndedElsewhere(ILogger logger, string jobId, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: its model {Model} version {Version} was stored before an interruption; finishing without training again")]
    private static partial void LogAlreadyStored(ILogger logger, string jobId, string model, int version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: PostgreSQL unreachable ({Reason}); Hangfire retries it and it resumes from its last checkpoint")]
    private static partial void LogStorageLost(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: model {Model} version {Version} is stored but not activated: the promotion gate refused it (see the job's warnings)")]
    private static partial void LogNotPromoted(ILogger logger, string jobId, string model, int version);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: trial of sweep {SweepId} stopped early: {Reason}")]
    private static partial void LogTrialStopped(ILogger logger, string jobId, string sweepId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: cancelled")]
    private static partial void LogCancelled(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: interrupted by shutdown; it resumes from its last epoch checkpoint")]
    private static partial void LogInterrupted(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: not run, it is {Status}")]
    private static partial void LogSkipped(ILogger logger, string jobId, string status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId, string error);
}
