using System.Collections.Concurrent;
using System.ComponentModel;
using System.Text.Json;
using Hangfire;
using Nin.Api.Datasets;
using Nin.Model.Checkpoints;
using Nin.Model.Network;
using Nin.Model.Runtime;
using Nin.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Training;

/// <summary>Cancellation sources of running jobs, so DELETE stops a job within one batch.</summary>
public sealed class JobCancellation
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> running = new();

    public CancellationTokenSource Register(string jobId, CancellationToken hangfireToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(hangfireToken);
        running[jobId] = cts;
        return cts;
    }

    public void Unregister(string jobId)
    {
        if (running.TryRemove(jobId, out var cts))
        {
            cts.Dispose();
        }
    }

    /// <summary>Signals a running job to stop; false if it is not running here.</summary>
    public bool Cancel(string jobId)
    {
        if (!running.TryGetValue(jobId, out var cts))
        {
            return false;
        }

        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        return true;
    }
}

/// <summary>
/// The Hangfire job that trains one NiN: one at a time on the <c>training</c> queue, no automatic
/// retries, an epoch checkpoint after every epoch to resume from after a restart.
/// </summary>
[Queue(TrainingJob.Queue)]
[AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class TrainingJob(
    TrainingJobStore jobs,
    DatasetCatalog datasets,
    ModelStore models,
    TrainingNotifier notifier,
    JobCancellation cancellation,
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
            Publish(jobs.Update(jobId, j => j with { Status = JobStatus.Running, Device = device.ToString(), StartedAt = j.StartedAt ?? DateTimeOffset.UtcNow, Error = null }));
            LogStarted(logger, jobId, settings.Dataset, device.ToString(), settings.Epochs, settings.ImageSize);

            var data = await datasets.LoadAsync(settings.Dataset, settings.MaxTrainImages, settings.MaxTestImages, cts.Token);
            // Its own thread: its OpenMP team is the only multi-threaded one besides serving's, and goes away with it.
            var result = await TorchRuntime.RunOnOwnThread($"nin-train-{jobId}", () => Train(jobId, settings, data, device, cts.Token));

            var stored = models.Add(result.Network, result.Metadata, settings.Activate);
            result.Network.Dispose();
            DeleteCheckpoint(jobId);
            var done = jobs.Update(jobId, j => j with { Status = JobStatus.Succeeded, ModelName = stored.Name, ModelVersion = stored.Version, FinishedAt = DateTimeOffset.UtcNow });
            Publish(done);
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Succeeded, stored.Name, stored.Version, null));
            LogSucceeded(logger, jobId, stored.Name, stored.Version, result.Metadata.Metrics?.TestAccuracy ?? 0);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The server is shutting down: leave the job queued; it resumes from its last epoch checkpoint.
            Publish(jobs.Update(jobId, j => j with { Status = JobStatus.Queued, Progress = j.Progress with { Batch = 0 } }));
            LogInterrupted(logger, jobId);
            throw;
        }
        catch (OperationCanceledException)
        {
            DeleteCheckpoint(jobId);
            Publish(jobs.Update(jobId, j => j with { Status = JobStatus.Cancelled, FinishedAt = DateTimeOffset.UtcNow }));
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Cancelled, null, null, null));
            LogCancelled(logger, jobId);
        }
        catch (Exception ex)
        {
            var error = ex.Message;
            Publish(jobs.Update(jobId, j => j with { Status = JobStatus.Failed, Error = error, FinishedAt = DateTimeOffset.UtcNow }));
            notifier.JobFinished(new JobFinishedEvent(jobId, JobStatus.Failed, null, null, error));
            LogFailed(logger, ex, jobId, error);
        }
        finally
        {
            cancellation.Unregister(jobId);
        }
    }

    private (ImageClassifier Network, ModelMetadata Metadata) Train(string jobId, TrainSettings settings, Model.Data.DatasetSplit data, Device device, CancellationToken cancellationToken)
    {
        var options = new TrainingOptions
        {
            Epochs = settings.Epochs,
            BatchSize = settings.BatchSize,
            LearningRate = settings.LearningRate,
            Momentum = settings.Momentum,
            WeightDecay = settings.WeightDecay,
            ImageSize = settings.ImageSize,
            Seed = settings.Seed,
        };

        manual_seed(settings.Seed);
        var network = NetworkArchitectures.Nin.Create(data.Train.Channels, data.Train.ClassNames.Count);
        try
        {
            using var trainer = new Trainer(network, data, options, device);
            var checkpointDir = Path.Combine(jobs.JobDirectory(jobId), "checkpoint");
            var resume = ReadResumePoint(checkpointDir);
            if (resume is not null)
            {
                LogResuming(logger, jobId, resume.CompletedEpochs);
                Publish(jobs.Update(jobId, j => j with { ResumedAfterEpoch = resume.CompletedEpochs, Epochs = resume.History }));
            }

            var observer = new Observer(jobs, notifier, logger, jobId, settings.Epochs, resume?.History ?? []);
            var metrics = trainer.Run(observer, cancellationToken, resume, (epoch, optimizer) => SaveCheckpoint(checkpointDir, epoch, network, optimizer, observer.History));
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

    private sealed class Observer(TrainingJobStore jobs, TrainingNotifier notifier, ILogger logger, string jobId, int epochs, IReadOnlyList<EpochMetrics> earlier) : ITrainingObserver
    {
        public List<EpochMetrics> History { get; } = [.. earlier];

        public void OnBatch(BatchProgress progress)
        {
            jobs.Update(jobId, j => j with { Progress = new JobProgress(progress.Epoch, progress.Batch, progress.Batches) }, persist: false);
            notifier.BatchProgress(new BatchProgressEvent(jobId, progress.Epoch, progress.Batch, progress.Batches, progress.Loss));
        }

        public void OnEpoch(EpochMetrics metrics)
        {
            History.Add(metrics);
            if (jobs.Update(jobId, j => j with { Epochs = [.. j.Epochs.Where(e => e.Epoch < metrics.Epoch), metrics] }) is { } snapshot)
            {
                notifier.JobUpdated(snapshot);
            }

            notifier.EpochCompleted(new EpochCompletedEvent(jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond, metrics.Seconds));
            LogEpoch(logger, jobId, metrics.Epoch, epochs, metrics.TrainLoss, metrics.TrainAccuracy, metrics.TestAccuracy, metrics.ExamplesPerSecond);
        }
    }

    private sealed record CheckpointState(int CompletedEpochs, IReadOnlyList<EpochMetrics> History);

    private void SaveCheckpoint(string dir, int epoch, ImageClassifier network, TorchSharp.Modules.OptimizerHelper optimizer, IReadOnlyList<EpochMetrics> history)
    {
        Directory.CreateDirectory(dir);
        network.save(Path.Combine(dir, "weights.bin.tmp"));
        optimizer.save_state_dict(Path.Combine(dir, "optimizer.bin.tmp"));
        File.Move(Path.Combine(dir, "weights.bin.tmp"), Path.Combine(dir, "weights.bin"), overwrite: true);
        File.Move(Path.Combine(dir, "optimizer.bin.tmp"), Path.Combine(dir, "optimizer.bin"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "state.json.tmp"), JsonSerializer.Serialize(new CheckpointState(epoch, history), ModelMetadata.JsonOptions));
        File.Move(Path.Combine(dir, "state.json.tmp"), Path.Combine(dir, "state.json"), overwrite: true);
    }

    private static ResumePoint? ReadResumePoint(string dir)
    {
        var state = Path.Combine(dir, "state.json");
        if (!File.Exists(state))
        {
            return null;
        }

        try
        {
            var s = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(state), ModelMetadata.JsonOptions);
            return s is null ? null : new ResumePoint(s.CompletedEpochs, s.History, Path.Combine(dir, "weights.bin"), Path.Combine(dir, "optimizer.bin"));
        }
        catch (JsonException)
        {
            return null;
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: cancelled")]
    private static partial void LogCancelled(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: interrupted by shutdown; it resumes from its last epoch checkpoint")]
    private static partial void LogInterrupted(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: not run, it is {Status}")]
    private static partial void LogSkipped(ILogger logger, string jobId, string status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId, string error);
}
