using System.Data.Common;
using System.Text.Json.Serialization;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Nin.Api.Datasets;
using Nin.Api.Serving;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Runtime;

namespace Nin.Api.Infrastructure;

/// <summary>Hangfire storage settings, bound from the <c>Hangfire</c> section.</summary>
public sealed class HangfireOptions
{
    public const string SectionName = "Hangfire";

    /// <summary>PostgreSQL connection string; when empty, jobs are kept in memory (Hangfire.InMemory).</summary>
    public string? PostgresConnection { get; set; }

    /// <summary>The PostgreSQL schema Hangfire's tables live in.</summary>
    public string PostgresSchema { get; set; } = "hangfire";

    public bool UsesPostgres => !string.IsNullOrWhiteSpace(PostgresConnection);

    /// <summary>
    /// The connection string Nin opens: GSS encryption off unless the string (or <c>PGGSSENCMODE</c>) asks for
    /// it. Otherwise Npgsql 10 probes for libgssapi_krb5 on every physical connection and, where Kerberos is
    /// absent (the .NET aspnet image), logs an error each time (npgsql/npgsql#6360, #6416).
    /// </summary>
    public string? EffectivePostgresConnection => UsesPostgres ? DisableGssUnlessAsked(PostgresConnection!) : null;

    internal static string DisableGssUnlessAsked(string connectionString)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var asked = given.Keys.Cast<string>().Any(k => k.Replace(" ", "", StringComparison.Ordinal).Equals("GssEncryptionMode", StringComparison.OrdinalIgnoreCase))
            || Environment.GetEnvironmentVariable("PGGSSENCMODE") is { Length: > 0 };
        return asked
            ? connectionString
            : new NpgsqlConnectionStringBuilder(connectionString) { GssEncryptionMode = GssEncryptionMode.Disable }.ConnectionString;
    }

    /// <summary>Serve the Hangfire dashboard to remote clients too (it is local-only by default).</summary>
    public bool DashboardAllowRemote { get; set; }
}

public static class NinServiceExtensions
{
    /// <summary>Options, Torch start-up, JSON and ProblemDetails conventions every area shares.</summary>
    public static IHostApplicationBuilder AddNinCore(this IHostApplicationBuilder builder)
    {
        builder.Configuration.AddNinEnvironmentDefaults();
        builder.Services.AddOptions<NinOptions>().BindConfiguration(NinOptions.SectionName);
        builder.Services.AddOptions<TorchOptions>().BindConfiguration(TorchOptions.SectionName);
        builder.Services.AddHostedService<TorchStartup>();
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter());
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        });
        builder.Services.AddHttpClient("datasets", c => c.Timeout = TimeSpan.FromMinutes(5));
        builder.Services.AddOptions<DatasetUploadOptions>().BindConfiguration(DatasetUploadOptions.SectionName);
        builder.Services.AddSingleton<UploadedDatasets>();
        builder.Services.AddSingleton<DatasetCatalog>();
        builder.Services.AddSingleton(sp => new ModelStore(sp.GetRequiredService<IOptions<NinOptions>>().Value.ResolvedModelsDirectory));
        return builder;
    }

    /// <summary>Training jobs on Hangfire (one worker on the <c>training</c> queue) and the SignalR hub.</summary>
    public static IHostApplicationBuilder AddNinTraining(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<HangfireOptions>().BindConfiguration(HangfireOptions.SectionName);
        builder.Services.AddHangfire((services, config) =>
        {
            var hangfire = services.GetRequiredService<IOptions<HangfireOptions>>().Value;
            config.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings();
            if (hangfire.UsesPostgres)
            {
                config.UsePostgreSqlStorage(
                    o => o.UseNpgsqlConnection(hangfire.EffectivePostgresConnection),
                    new PostgreSqlStorageOptions
                    {
                        SchemaName = hangfire.PostgresSchema,
                        QueuePollInterval = TimeSpan.FromSeconds(1),
                        PrepareSchemaIfNecessary = true,
                    });
            }
            else
            {
                config.UseInMemoryStorage();
            }
        });
        builder.Services.AddHangfireServer(o =>
        {
            o.Queues = [TrainingJob.Queue];
            o.WorkerCount = 1; // one device: a second job waits its turn
            o.ServerName = $"nin-{Environment.MachineName}";
            o.ShutdownTimeout = TimeSpan.FromSeconds(30);
        });

        builder.Services.AddAntiforgery(); // Hangfire's dashboard validates its token on POSTs when this is registered
        builder.Services.AddSignalR().AddJsonProtocol(o => o.PayloadSerializerOptions.Converters.Add(new JsonStringEnumConverter()));
        builder.Services.AddSingleton<TrainingJobStore>();
        builder.Services.AddSingleton<TrainingNotifier>();
        builder.Services.AddSingleton<JobCancellation>();
        builder.Services.AddSingleton<TrainRequestValidator>();
        builder.Services.AddSingleton<TrainingMemoryProbe>();
        builder.Services.AddTransient<TrainingJob>();
        builder.Services.AddHostedService<TrainingJobRecovery>();
        return builder;
    }

    /// <summary>Model registry, the dynamic-batching inference engine and the shipped default model.</summary>
    public static IHostApplicationBuilder AddNinServing(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ServingOptions>().BindConfiguration(ServingOptions.SectionName)
            .Validate(o => o.MaxBatchSize >= 0 && o.MaxBatchDelayMilliseconds >= 0 && o.Workers >= 0 && o.ThreadsPerPass >= 0,
                "Serving: MaxBatchSize, MaxBatchDelayMilliseconds, Workers and ThreadsPerPass cannot be negative (0 picks the default).")
            .Validate(o => ServingEngines.IsValid(o.Engine), $"Serving:Engine must be one of: {string.Join(", ", ServingEngines.Names)}.")
            .Validate(o => ServingPrecision.IsValid(o.Precision), $"Serving:Precision must be one of: {string.Join(", ", ServingPrecision.Names)}.")
            .Validate(o => ServingPrecision.IsFp32(o.Precision) || !string.Equals(o.Engine?.Trim(), OnnxModelRunner.EngineName, StringComparison.OrdinalIgnoreCase),
                "Serving:Precision fp16 and bf16 need the TorchSharp engine (Serving:Engine torch or auto): ONNX Runtime serves fp32 only.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ModelRegistry>();
        builder.Services.AddSingleton<InferenceEngine>();
        builder.Services.AddHostedService<DefaultModelSeeder>();
        return builder;
    }

    /// <summary>Readiness checks and Prometheus metrics (OpenTelemetry) at /metrics.</summary>
    public static IHostApplicationBuilder AddNinOperations(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks()
            .AddCheck<Health.TorchHealthCheck>("torch")
            .AddCheck<Health.ModelHealthCheck>("model")
            .AddCheck<Health.JobStorageHealthCheck>("jobStorage");
        builder.Services.AddSingleton<NinTelemetry>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("nin"))
            .WithMetrics(m => m
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(InferenceEngine.MeterName, NinTelemetry.MeterName)
                .AddPrometheusExporter());
        return builder;
    }

    /// <summary>ProblemDetails for every error.</summary>
    public static WebApplication UseNinDefaults(this WebApplication app)
    {
        app.Services.GetRequiredService<NinTelemetry>(); // register the gauges
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        return app;
    }

    /// <summary>
    /// The Hangfire dashboard: local requests only unless configured; after the security middleware, so with API keys
    /// on it needs one, and cross-site requests are refused. Antiforgery is registered, so Hangfire checks its token on
    /// every POST (its pages send it; a forged form or script cannot).
    /// </summary>
    public static WebApplication UseNinHangfireDashboard(this WebApplication app)
    {
        var hangfire = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            Authorization = hangfire.DashboardAllowRemote ? [new AllowAllDashboardFilter()] : [new Hangfire.Dashboard.LocalRequestsOnlyAuthorizationFilter()],
            DisplayStorageConnectionString = false,
        });
        return app;
    }

    private sealed class AllowAllDashboardFilter : Hangfire.Dashboard.IDashboardAuthorizationFilter
    {
        public bool Authorize(Hangfire.Dashboard.DashboardContext context) => true;
    }
}
