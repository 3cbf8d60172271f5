using System.Text.Json.Serialization;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Nin.Api.Cluster;
using Nin.Api.Datasets;
using Nin.Api.Serving;
using Nin.Api.Serving.Grpc;
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
        builder.Services.AddSingleton(NinRole.Of(builder));
        builder.Services.AddOptions<NinOptions>().BindConfiguration(NinOptions.SectionName)
            .Validate(o => NinRole.Known.Any(r => string.Equals(r.Name, o.Role?.Trim(), StringComparison.OrdinalIgnoreCase)),
                $"Nin:Role must be one of {string.Join(", ", NinRole.Known.Select(r => r.Name))}.")
            .ValidateOnStart();
        builder.Services.AddOptions<TorchOptions>().BindConfiguration(TorchOptions.SectionName)
            .Validate(o => TorchRuntime.IsDeviceName(o.Device), "Torch:Device must be auto, cpu, cuda or cuda:N.")
            .Validate(o => o.Threads >= 0, "Torch:Threads cannot be negative (0: libtorch's own choice).")
            .Validate(o => string.IsNullOrWhiteSpace(o.OneDnn) || CpuGradientCheck.Modes.Contains(o.OneDnn.Trim().ToLowerInvariant()), $"Torch:OneDnn must be one of {string.Join(", ", CpuGradientCheck.Modes)}.")
            .ValidateOnStart();
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

            // A field a request does not have is refused (400 naming it), as the schemas say (additionalProperties: false):
            // a typo such as "epoch" must not silently run the preset's defaults.
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        });

        // The binder throws what it refuses, so BadRequestExceptionHandler can answer which field and why.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddExceptionHandler<BadRequestExceptionHandler>();
        builder.AddRejectedRequestProblems();
        builder.AddNinConnectionLimits(); // a connection flood cannot use up the file descriptors
        builder.Services.AddHttpClient("datasets", c => c.Timeout = TimeSpan.FromMinutes(5));
        builder.Services.AddOptions<DatasetUploadOptions>().BindConfiguration(DatasetUploadOptions.SectionName)
            .Validate(o => o.IsValid, "DatasetUploads: every limit must be positive, MaxPathDepth at least 2, MaxTotalPixels at least MaxImagePixels, MaxTotalBytes at least MaxDatasetBytes, and 8 <= DefaultSize <= MaxSize.")
            .ValidateOnStart();
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
        var role = NinRole.Of(builder);
        builder.Services.AddOptions<HangfireOptions>().BindConfiguration(HangfireOptions.SectionName)
            .Validate(o => o.InvisibilityTimeout >= TimeSpan.FromSeconds(5), "Hangfire:InvisibilityTimeout must be at least 00:00:05.")
            .ValidateOnStart();
        builder.Services.AddHangfire((services, config) =>
        {
            var hangfire = services.GetRequiredService<IOptions<HangfireOptions>>().Value;
            config.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UseFilter(new TraceContextJobFilter()); // a job's spans continue the trace of the request that queued it
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
                o.ShutdownTimeout = TimeSpan.FromSeconds(30); // a running job stops within a batch and keeps its checkpoint
            });
            // Hangfire gives up on a process that did not stop after ShutdownTimeout plus its last-chance second; the host
            // must wait longer than that, or its own timeout cancels Hangfire's stop and shutdown ends in an exception (seen
            // after a PostgreSQL outage). Deployments give a worker 60 s (compose stop_grace_period, k8s grace period).
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(45));
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
            .Validate(o => !ServingPrecision.IsHalf(o.Precision) || !string.Equals(o.Engine?.Trim(), OnnxModelRunner.EngineName, StringComparison.OrdinalIgnoreCase),
                "Serving:Precision fp16 and bf16 need the TorchSharp engine (Serving:Engine torch or auto): ONNX Runtime serves fp32 and int8.")
            .Validate(o => ServingPrecision.Normalize(o.Precision) != ServingPrecision.Int8 && o.VersionPrecision.Values.All(v => ServingPrecision.Normalize(v) != ServingPrecision.Int8)
                    || !string.Equals(o.Engine?.Trim(), TorchModelRunner.EngineName, StringComparison.OrdinalIgnoreCase),
                "Serving:Precision int8 needs the ONNX Runtime engine (Serving:Engine onnxruntime or auto): TorchSharp serves fp32, fp16 and bf16.")
            .Validate(o => o.VersionPrecision.Values.All(v => ServingPrecision.VersionNames.Contains(ServingPrecision.Normalize(v))),
                $"Serving:VersionPrecision values must be one of: {string.Join(", ", ServingPrecision.VersionNames)}.")
            .Validate(o => o.VersionPrecision.Count == 0 || !ServingPrecision.IsHalf(o.Precision),
                "Serving:VersionPrecision applies to ONNX Runtime; with Serving:Precision fp16 or bf16 TorchSharp serves every version.")
            .Validate(o => o.Int8CalibrationImages >= 1 && o.Int8MarginPoints >= 0,
                "Serving:Int8CalibrationImages must be at least 1 and Serving:Int8MarginPoints cannot be negative.")
            .Validate(o => o.MaxQueueMilliseconds >= 0 && o.MaxQueuedImages >= 0 && o.MaxSchedulingDelayMilliseconds >= 0 && o.LoadRetryMaxSeconds >= 1,
                "Serving: MaxQueueMilliseconds, MaxQueuedImages and MaxSchedulingDelayMilliseconds cannot be negative (0: no bound), LoadRetryMaxSeconds must be at least 1.")
            .Validate(o => o.GrpcPort is >= 0 and <= 65535, "Serving:GrpcPort must be a TCP port (0: no gRPC port).")
            .Validate(o => o.WorkerNice is >= 0 and <= 19, "Serving:WorkerNice must be between 0 and 19.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ModelRegistry>();
        builder.Services.AddSingleton<InferenceEngine>();
        builder.Services.AddSingleton<ServingMetrics>();
        builder.Services.AddSingleton<AdmissionControl>();
        builder.Services.AddSingleton<SchedulingDelay>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SchedulingDelay>());
        builder.Services.AddSingleton<InferenceAccess>();
        builder.Services.AddSingleton<ModelExplainer>();
        builder.Services.AddSingleton<TrafficRouter>();
        builder.Services.AddSingleton<InferenceDataPlane>();
        // Ahead of the default writer: errors under /v2 are { "error": "..." } whoever writes them.
        builder.Services.Insert(0, ServiceDescriptor.Singleton<IProblemDetailsWriter, V2ErrorWriter>());
        builder.AddNinGrpc();
        if (NinRole.Of(builder).ServesApi)
        {
            builder.Services.AddHostedService<DefaultModelSeeder>(); // a worker never loads a model to serve
        }

        return builder;
    }

    /// <summary>Readiness checks and Prometheus metrics (OpenTelemetry) at /metrics.</summary>
    public static IHostApplicationBuilder AddNinOperations(this IHostApplicationBuilder builder)
    {
        var checks = builder.Services.AddHealthChecks().AddCheck<Health.TorchHealthCheck>("torch");
        if (NinRole.Of(builder).ServesApi)
        {
            checks.AddCheck<Health.ModelHealthCheck>("model");
        }

        checks.AddCheck<Health.JobStorageHealthCheck>("jobStorage");
        checks.AddCheck<Health.DiskSpaceHealthCheck>("diskSpace");
        checks.AddCheck<Health.StoredRecordsHealthCheck>("records");
        builder.Services.AddSingleton<NinTelemetry>();
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(builder.Configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } service ? service : "nin"))
            .WithMetrics(m => m
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(ServingMetrics.MeterName, NinTelemetry.MeterName)
                .AddPrometheusExporter());
        if (NinTelemetry.TracingEnabled(builder.Configuration))
        {
            // The OTLP exporter reads the standard OTEL_EXPORTER_OTLP_* settings (endpoint, protocol, headers) itself.
            telemetry.WithTracing(t => t
                .AddAspNetCoreInstrumentation(o => o.Filter = c => !c.Request.Path.StartsWithSegments("/metrics") && !c.Request.Path.StartsWithSegments("/health"))
                .AddSource(ServingMetrics.MeterName, TraceContextJobFilter.SourceName)
                .AddOtlpExporter());
        }

        return builder;
    }

    /// <summary>Says at start-up what this process runs and where its shared state lives.</summary>
    public static WebApplication LogNinRole(this WebApplication app)
    {
        var role = app.Services.GetRequiredService<NinRole>();
        var hangfire = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        var redis = app.Services.GetRequiredService<IOptions<SignalRScaleOutOptions>>().Value.Redis;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Nin.Role");
        var jobs = hangfire.UsesPostgres
            ? $"PostgreSQL (Hangfire schema {hangfire.PostgresSchema}, Nin schema {app.Services.GetRequiredService<IOptions<SharedStateOptions>>().Value.Schema}; invisibility timeout {hangfire.InvisibilityTimeout})"
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
        app.UseMiddleware<ConnectionPressure>(); // a connection that came in under a flood gets 503 at once
        return app;
    }

    /// <summary>
    /// The Hangfire dashboard: local requests only unless configured (judged by the connecting address, not by forwarded
    /// headers); after the security middleware, so with API keys on it needs an admin key, and cross-site requests are refused. Antiforgery is registered, so Hangfire checks its token on
    /// every POST (its pages send it; a forged form or script cannot).
    /// </summary>
    public static WebApplication UseNinHangfireDashboard(this WebApplication app)
    {
        var hangfire = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            Authorization = hangfire.DashboardAllowRemote ? [new AllowAllDashboardFilter()] : [new Security.ConnectingAddress.LocalDashboardFilter()],
            DisplayStorageConnectionString = false,
        });
        return app;
    }

    private sealed class AllowAllDashboardFilter : Hangfire.Dashboard.IDashboardAuthorizationFilter
    {
        public bool Authorize(Hangfire.Dashboard.DashboardContext context) => true;
    }
}
