using System.Diagnostics.Metrics;
using Nin.Api.Serving;
using Nin.Api.Training;
using Nin.Model.Runtime;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Gauges of the service's state for Prometheus: the model in service, training jobs by state (one aggregate query, not
/// a read of every record), the last epoch's figures, free space on each data folder, the Torch device and the process's
/// memory.
/// </summary>
public sealed class NinTelemetry
{
    public const string MeterName = "Nin";

    /// <summary>
    /// Tracing is off by default and on with the standard OpenTelemetry settings: <c>OTEL_TRACES_EXPORTER=otlp</c>, or an
    /// OTLP endpoint (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c> / <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>) unless
    /// <c>OTEL_TRACES_EXPORTER=none</c>; <c>OTEL_SDK_DISABLED=true</c> turns it off.
    /// </summary>
    public static bool TracingEnabled(IConfiguration configuration)
    {
        if (string.Equals(configuration["OTEL_SDK_DISABLED"], "true", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var exporter = configuration["OTEL_TRACES_EXPORTER"]?.Trim().ToLowerInvariant();
        return exporter switch
        {
            "otlp" => true,
            "none" => false,
            _ => !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]),
        };
    }

    private readonly ITrainingJobStore store;
    private readonly Lock gate = new();
    private (IReadOnlyDictionary<JobStatus, int> Counts, JobSnapshot? Latest, long At) recent = (new Dictionary<JobStatus, int>(), null, 0);

    public NinTelemetry(IMeterFactory meters, IServiceProvider services, ITrainingJobStore store, NinRole role)
    {
        this.store = store;
        var registry = role.ServesApi ? services.GetRequiredService<ModelRegistry>() : null; // a worker serves nothing
        var folders = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<NinOptions>>().Value;
        var storage = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Health.StorageOptions>>().Value;
        var jobs = this;
        var meter = meters.Create(MeterName);
        meter.CreateObservableGauge("nin.model.active", () =>
            registry?.Current is { } m ? [new Measurement<int>(1, new("model", m.Name), new("version", m.Version))] : Array.Empty<Measurement<int>>(),
            description: "1 for the model version /predict serves");

        meter.CreateObservableGauge("nin.training.jobs", () =>
        {
            var counts = jobs.Read().Counts;
            return Enum.GetValues<JobStatus>().Select(s => new Measurement<int>(counts.GetValueOrDefault(s), new KeyValuePair<string, object?>("status", s.ToString())));
        }, description: "Training jobs by status");

        IEnumerable<Measurement<double>> LastEpoch(Func<Model.Checkpoints.EpochMetrics, double> value)
        {
            var job = jobs.Read().Latest;
            return job is null || job.Epochs.Count == 0 ? [] : [new Measurement<double>(value(job.Epochs[^1]), new KeyValuePair<string, object?>("job", job.JobId))];
        }

        meter.CreateObservableGauge("nin.training.last_epoch.loss", () => LastEpoch(e => e.TrainLoss), description: "Train loss of the latest finished epoch");
        meter.CreateObservableGauge("nin.training.last_epoch.train_accuracy", () => LastEpoch(e => e.TrainAccuracy), description: "Train accuracy of the latest finished epoch");
        meter.CreateObservableGauge("nin.training.last_epoch.test_accuracy", () => LastEpoch(e => e.TestAccuracy), description: "Test accuracy of the latest finished epoch");
        meter.CreateObservableGauge("nin.training.last_epoch.examples_per_second", () => LastEpoch(e => e.ExamplesPerSecond), "{image}/s", "Training throughput of the latest finished epoch");

        meter.CreateObservableGauge("nin.storage.free", () => Health.DataFolders.Of(folders).SelectMany(f =>
        {
            try
            {
                return [new Measurement<long>(Model.Checkpoints.DiskSpace.Free(f.Path), new KeyValuePair<string, object?>("folder", f.Name))];
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
            {
                return Array.Empty<Measurement<long>>();
            }
        }), "By", "Free space on each data folder's file system (data, models, work)");
        meter.CreateObservableGauge("nin.storage.minimum_free", () => storage.MinimumFreeBytes, "By", "Storage:MinimumFreeBytes: below it, readiness reports the folder degraded");

        meter.CreateObservableGauge("nin.torch.device", () =>
        {
            try
            {
                var info = TorchRuntime.Info;
                return [new Measurement<int>(1, new("device", info.Device), new("backend", info.Backend), new("torchsharp", info.TorchSharpVersion))];
            }
            catch (InvalidOperationException)
            {
                return Array.Empty<Measurement<int>>();
            }
        }, description: "1 for the Torch device and backend in use");

        meter.CreateObservableGauge("nin.process.memory.working_set", () => Environment.WorkingSet, "By", "Process working set (includes libtorch's CPU allocations)");
    }

    // One count query and one latest-epoch query per scrape, not one per gauge (they may be PostgreSQL queries).
    private (IReadOnlyDictionary<JobStatus, int> Counts, JobSnapshot? Latest) Read()
    {
        lock (gate)
        {
            if (recent.At == 0 || System.Diagnostics.Stopwatch.GetElapsedTime(recent.At) > TimeSpan.FromSeconds(1))
            {
                recent = (store.CountByStatus(), store.LatestWithEpochs(), System.Diagnostics.Stopwatch.GetTimestamp());
            }

            return (recent.Counts, recent.Latest);
        }
    }
}
