using System.ComponentModel;
using Hangfire;
using Nin.Api.Training;

namespace Nin.Api.Models;

/// <summary>
/// The Hangfire job behind <c>POST /models/{name}/versions/{version}/evaluate</c>: on the <c>training</c> queue, so it
/// waits for a running training job instead of competing with it for the device. No automatic retries.
/// </summary>
[Queue(TrainingJob.Queue)]
[AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class EvaluationJob(ModelEvaluator evaluator, ILogger<EvaluationJob> logger)
{
    [DisplayName("Evaluate {0} version {1}")]
    public async Task RunAsync(string name, int version, CancellationToken cancellationToken)
    {
        var evaluation = await evaluator.EvaluateAsync(name, version, cancellationToken);
        if (evaluation is null)
        {
            LogGone(logger, name, version);
            return;
        }

        LogEvaluated(logger, name, version, evaluation.Accuracy, evaluation.TestImages);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Evaluated {Model} version {Version}: accuracy {Accuracy:F4} on {TestImages} test images")]
    private static partial void LogEvaluated(ILogger logger, string model, int version, double accuracy, int testImages);

    [LoggerMessage(Level = LogLevel.Information, Message = "Not evaluated: {Model} version {Version} no longer exists")]
    private static partial void LogGone(ILogger logger, string model, int version);
}
