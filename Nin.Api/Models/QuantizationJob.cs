using System.ComponentModel;
using Hangfire;
using Nin.Api.Training;

namespace Nin.Api.Models;

/// <summary>
/// The Hangfire job behind <c>POST /models/{name}/versions/{version}/quantize</c>: on the <c>training</c> queue, so it
/// waits for a running training job instead of competing with it for the cores. No automatic retries.
/// </summary>
[Queue(TrainingJob.Queue)]
[AutomaticRetry(Attempts = 0, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
public sealed partial class QuantizationJob(VersionQuantizer quantizer, ILogger<QuantizationJob> logger)
{
    [DisplayName("Quantize {0} version {1} to int8")]
    public async Task RunAsync(string name, int version, CancellationToken cancellationToken)
    {
        if (await quantizer.QuantizeAsync(name, version, cancellationToken) is null)
        {
            LogGone(logger, name, version);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Not quantized: {Model} version {Version} no longer exists")]
    private static partial void LogGone(ILogger logger, string model, int version);
}
