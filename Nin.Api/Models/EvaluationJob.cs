using System.ComponentModel;
using Hangfire;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Models;

/// <summary>
/// The Hangfire job behind <c>POST /models/{name}/versions/{version}/evaluate</c>: on the <c>training</c> queue, so it
/// waits for a running training job instead of competing with it for the device. No automatic retries: a failure is
/// recorded beside the version (<see cref="EvaluationStatus"/>), where GET .../evaluation reports it.
/// </summary>
[Queue(TrainingJob.Queue)]
[AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class EvaluationJob(ModelEvaluator evaluator, ModelStore store, IOptions<NinOptions> folders, ILogger<EvaluationJob> logger)
{
    [DisplayName("Evaluate {0} version {1}")]
    public async Task RunAsync(string name, int version, CancellationToken cancellationToken)
    {
        if (store.Find(name, version) is not { } info)
        {
            LogGone(logger, name, version);
            return;
        }

        var queued = EvaluationStatus.Read(info.Directory);
        new EvaluationStatus(EvaluationStatus.Running, null, queued?.HangfireJobId, DateTimeOffset.UtcNow).Write(info.Directory);
        try
        {
            var evaluation = await evaluator.EvaluateAsync(name, version, cancellationToken);
            if (evaluation is null)
            {
                LogGone(logger, name, version);
                return;
            }

            EvaluationStatus.Clear(info.Directory);
            LogEvaluated(logger, name, version, evaluation.Accuracy, evaluation.TestImages);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            new EvaluationStatus(EvaluationStatus.Queued, null, queued?.HangfireJobId, DateTimeOffset.UtcNow).Write(info.Directory);
            throw; // shutting down: Hangfire runs it again
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var error = ex is EvaluationUnavailableException or InsufficientStorageException ? ex.Message : ClientErrors.Describe(ex, folders.Value);
            new EvaluationStatus(EvaluationStatus.Failed, error, queued?.HangfireJobId, DateTimeOffset.UtcNow).Write(info.Directory);
            LogFailed(logger, ex, name, version, error);
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Evaluation of {Model} version {Version} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string model, int version, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Evaluated {Model} version {Version}: accuracy {Accuracy:F4} on {TestImages} test images")]
    private static partial void LogEvaluated(ILogger logger, string model, int version, double accuracy, int testImages);

    [LoggerMessage(Level = LogLevel.Information, Message = "Not evaluated: {Model} version {Version} no longer exists")]
    private static partial void LogGone(ILogger logger, string model, int version);
}
