using Nin.Api.Infrastructure;
using Nin.Api.Training;
using Nin.Model.Checkpoints;

namespace Nin.Api.Cluster;

public static class SharedStateExtensions
{
    /// <summary>
    /// Where job records and the served version live: with <c>Hangfire:PostgresConnection</c> set, in PostgreSQL (every
    /// process sees the same, changes announced by LISTEN/NOTIFY); otherwise in this process and its files, as before.
    /// </summary>
    public static IHostApplicationBuilder AddNinSharedState(this IHostApplicationBuilder builder)
    {
        var postgres = builder.Configuration.GetSection(HangfireOptions.SectionName).Get<HangfireOptions>()?.UsesPostgres == true;
        var role = NinRole.Of(builder);
        if (!postgres && role != NinRole.All)
        {
            throw new InvalidOperationException(
                $"{NinRole.Key} '{role.Name}' shares jobs with other processes through PostgreSQL: set Hangfire:PostgresConnection (or run Nin:Role all).");
        }

        builder.Services.AddSingleton<LocalWorker>();
        if (!postgres)
        {
            builder.Services.AddSingleton<ITrainingJobStore, FileTrainingJobStore>();
            builder.Services.AddSingleton<IWorkerDirectory, LocalWorkerDirectory>();
            return builder;
        }

        builder.Services.AddOptions<SharedStateOptions>().BindConfiguration(SharedStateOptions.SectionName)
            .Validate(o => SharedStateOptions.IsValidSchema(o.Schema), "SharedState:Schema must be a lower-case PostgreSQL identifier (a-z, 0-9, _; at most 48 characters).")
            .Validate(o => o.ResyncInterval > TimeSpan.Zero && o.ProgressWriteInterval >= TimeSpan.Zero && o.WorkerHeartbeatInterval > TimeSpan.Zero,
                "SharedState:ResyncInterval and SharedState:WorkerHeartbeatInterval must be positive, SharedState:ProgressWriteInterval not negative.")
            .Validate(o => o.WorkerTimeout > o.WorkerHeartbeatInterval, "SharedState:WorkerTimeout must be longer than SharedState:WorkerHeartbeatInterval, or live workers would count as gone.")
            .ValidateOnStart();
        builder.Services.AddSingleton<SharedStateDatabase>();
        builder.Services.AddSingleton<PostgresActiveModel>();
        builder.Services.AddSingleton<IActiveModelPointer>(sp => sp.GetRequiredService<PostgresActiveModel>());
        builder.Services.AddSingleton<PostgresTrainingJobStore>();
        builder.Services.AddSingleton<ITrainingJobStore>(sp => sp.GetRequiredService<PostgresTrainingJobStore>());
        builder.Services.AddSingleton<ICancellationRelay>(sp => sp.GetRequiredService<PostgresTrainingJobStore>());
        builder.Services.AddSingleton<PostgresWorkerDirectory>();
        builder.Services.AddSingleton<IWorkerDirectory>(sp => sp.GetRequiredService<PostgresWorkerDirectory>());
        if (role.RunsJobs)
        {
            builder.Services.AddHostedService<WorkerHeartbeat>(); // before the Hangfire server: published before the first job
        }

        builder.Services.AddHostedService<SharedStateListener>();
        builder.Services.AddExceptionHandler<SharedStateUnavailableHandler>();
        return builder;
    }
}
