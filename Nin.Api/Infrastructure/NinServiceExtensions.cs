using System.Text.Json.Serialization;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Nin.Api.Cluster;
using Nin.Api.Datasets;
using Nin.Api.Serving;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Runtime;

namespace Nin.Api.Infrastructure;

public static partial class NinServiceExtensions
{
    /// <summary>Options, Torch start-up, JSON and ProblemDetails conventions every area shares.</summary>
    public static IHostApplicationBuilder AddNinCore(this IHostApplicationBuilder builder)
    {
        builder.Configuration.AddNinEnvironmentDefaults();
        builder.Services.AddSingleton(NinRole.From(builder.Configuration));
        builder.Services.AddOptions<NinOptions>().BindConfiguration(NinOptions.SectionName);
        builder.Services.AddOptions<TorchOptions>().BindConfiguration(TorchOptions.SectionName);
        builder.Services.AddHostedService<TorchStartup>();
        builder.Services.AddOptions<Health.StorageOptions>().BindConfiguration(Health.StorageOptions.SectionName)
            .Validate(o => o.MinimumFreeBytes >= 0, "Storage:MinimumFreeBytes cannot be negative.")
            .ValidateOnStart();
        builder.Services.AddHostedService<Health.StorageStartup>(); // temporaries swept, damaged records named, before jobs or seeding
        builder.Services.AddExceptionHandler<Health.InsufficientStorageHandler>(); // a full disk is a 507, not a 500
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
        builder.Services.AddSingleton(sp => new ModelStore(
            sp.GetRequiredService<IOptions<NinOptions>>().Value.ResolvedModelsDirectory, sp.GetService<IActiveModelPointer>()));
        builder.Services.AddSingleton<Models.ModelVersionPublisher>(); // the one way a version is born (training, import, the shipped model)
        builder.AddNinSharedState();
        return builder;
    }

    /// <summary>
    /// Training jobs on Hangfire (one worker on the <c>training</c> queue, in roles <c>all</c> and <c>worker</c>) and the
    /// SignalR hub, scaled out through Redis when <c>SignalR:Redis</c> is set.
    /// </summary>
    public static IHostApplicationBuilder AddNinTraining(this IHostApplicationBuilder builder)
    {
        var role = NinRole.From(builder.Configuration);
        builder.Services.AddOptions<HangfireOptions>().BindConfiguration(HangfireOptions.SectionName)
            .Validate(o => o.InvisibilityTimeout >= TimeSpan.FromSeconds(5), "Hangfire:InvisibilityTimeout must be at least 00:00:05.")
            .ValidateOnStart();
        builder.Services.AddHangfire((services, config) =>
        {
            var hangfire = services.GetRequiredService<IOptions<HangfireOptions>>().Value;
            config.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings();
            if (hangfire.UsesPostgres)
            {
                HangfireSchemaInstaller.InstallUnderLock(hangfire.EffectivePostgresConnection!, hangfire.PostgresSchema);
                config.UsePostgreSqlStorage(
                    o => o.UseNpgsqlConnection(hangfire.EffectivePostgresConnection),
                    new PostgreSqlStorageOptions
                    {
                        SchemaName = hangfire.PostgresSchema,
                        QueuePollInterval = TimeSpan.FromSeconds(1),
                        PrepareSchemaIfNecessary = true,
                        InvisibilityTimeout = hangfire.InvisibilityTimeout,
                        UseSlidingInvisibilityTimeout = true,
                    });
            }
            else
            {
                config.UseInMemoryStorage();
            }
        });
        builder.Services.AddOptions<TrainingJobOptions>().BindConfiguration(TrainingJobOptions.SectionName)
            .Validate(o => o.StorageRetries >= 0 && (o.StorageRetryDelays ?? []).All(d => d >= 0), "Training:StorageRetries and Training:StorageRetryDelays cannot be negative.")
            .Validate(o => o.RetentionSweepInterval > TimeSpan.Zero && o.HubRecentJobs is >= 1 and <= JobQuery.MaxLimit,
                $"Training:RetentionSweepInterval must be positive and Training:HubRecentJobs between 1 and {JobQuery.MaxLimit}.")
            .ValidateOnStart();
        builder.Services.AddHostedService<JobStateReconciler>(); // before the Hangfire server: no state change goes unrecorded
        if (role.RunsJobs)
        {
            builder.Services.AddHangfireServer(o =>
            {
                o.Queues = [TrainingJob.Queue];
                o.WorkerCount = 1; // one device: a second job waits its turn
                o.ServerName = $"nin-{role.Name}-{Environment.MachineName}-{Environment.ProcessId}";
                o.ShutdownTimeout = TimeSpan.FromSeconds(30);
            });
        }

        builder.Services.AddAntiforgery(); // Hangfire's dashboard validates its token on POSTs when this is registered
        builder.AddNinSignalR();
        builder.Services.AddSingleton<TrainingNotifier>();
        builder.Services.AddSingleton<JobCancellation>();
        builder.Services.AddSingleton<TrainRequestValidator>();
        builder.Services.AddSingleton<WorkerAdmission>();
        builder.Services.AddSingleton<TrainingMemoryProbe>();
        builder.Services.AddTransient<TrainingJob>();
        builder.Services.AddHostedService<TrainingJobRecovery>();
        builder.Services.AddHostedService<JobRetention>();
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
        if (NinRole.From(builder.Configuration).ServesApi)
        {
            builder.Services.AddHostedService<DefaultModelSeeder>(); // a worker never loads a model to serve
        }

        return builder;
    }

    /// <summary>Readiness checks and Prometheus metrics (OpenTelemetry) at /metrics.</summary>
    public static IHostApplicationBuilder AddNinOperations(this IHostApplicationBuilder builder)
    {
        var checks = builder.Services.AddHealthChecks().AddCheck<Health.TorchHealthCheck>("torch");
        if (NinRole.From(builder.Configuration).ServesApi)
        {
            checks.AddCheck<Health.ModelHealthCheck>("model");
        }

        checks.AddCheck<Health.JobStorageHealthCheck>("jobStorage");
        checks.AddCheck<Health.DiskSpaceHealthCheck>("diskSpace");
        checks.AddCheck<Health.StoredRecordsHealthCheck>("records");
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

    /// <summary>Says at start-up what this process runs and where its shared state lives.</summary>
    public static WebApplication LogNinRole(this WebApplication app)
    {
        var role = app.Services.GetRequiredService<NinRole>();
        var hangfire = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        var redis = app.Configuration[$"{SignalRScaleOutOptions.SectionName}:{nameof(SignalRScaleOutOptions.Redis)}"];
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Nin.Role");
        var jobs = hangfire.UsesPostgres
            ? $"PostgreSQL (Hangfire schema {hangfire.PostgresSchema}, Nin schema {app.Configuration["SharedState:Schema"] ?? "nin"}; invisibility timeout {hangfire.InvisibilityTimeout})"
            : "this process (in-memory queue, job records in local files)";
        var hub = string.IsNullOrWhiteSpace(redis) ? "this process only" : "the Redis backplane";
        app.Lifetime.ApplicationStarted.Register(() => LogRole(logger, role.Name, role.Describe(), jobs, hub));
        if (role != NinRole.All && string.IsNullOrWhiteSpace(redis))
        {
            LogNoBackplane(logger, role.Name);
        }

        return app;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Nin role {Role}: {Runs}. Jobs and the active model: {Jobs}. Hub events: {Hub}.")]
    private static partial void LogRole(ILogger logger, string role, string runs, string jobs, string hub);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Nin role {Role} without SignalR:Redis: live training events reach only clients of the process that runs the job; set SignalR:Redis to scale out")]
    private static partial void LogNoBackplane(ILogger logger, string role);

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
