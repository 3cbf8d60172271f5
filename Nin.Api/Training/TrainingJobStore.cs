using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// Training jobs as the API shows them, kept in memory and persisted to <c>{work}/jobs/{id}/job.json</c>
/// on every status change and epoch, so a restarted service still knows every job it accepted.
/// </summary>
public sealed class TrainingJobStore
{
    private readonly ConcurrentDictionary<string, JobSnapshot> jobs = new();
    private readonly ConcurrentDictionary<string, Lock> locks = new();

    public TrainingJobStore(IOptions<NinOptions> options)
    {
        Root = Directory.CreateDirectory(Path.Combine(options.Value.ResolvedWorkDirectory, "jobs")).FullName;
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            var file = Path.Combine(dir, "job.json");
            try
            {
                if (File.Exists(file) && JsonSerializer.Deserialize<JobSnapshot>(File.ReadAllText(file), ModelMetadata.JsonOptions) is { } job)
                {
                    jobs[job.JobId] = job;
                }
            }
            catch (JsonException)
            {
                // A record cut short by a crash: the job is unknown rather than the service down.
            }
        }
    }

    public string Root { get; }

    public string JobDirectory(string jobId) => Path.Combine(Root, jobId);

    public JobSnapshot Create(TrainSettings settings)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        var snapshot = new JobSnapshot(id, JobStatus.Queued, settings, null, new JobProgress(0, 0, 0), [], null, null, null, DateTimeOffset.UtcNow, null, null, Warnings: []);
        jobs[id] = snapshot;
        Persist(snapshot);
        return snapshot;
    }

    public JobSnapshot? Get(string jobId) => jobs.GetValueOrDefault(jobId);

    public IReadOnlyList<JobSnapshot> List() => jobs.Values.OrderByDescending(j => j.CreatedAt).ToArray();

    /// <summary>Applies a change atomically; <paramref name="persist"/> false for high-rate progress updates.</summary>
    public JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true)
    {
        lock (locks.GetOrAdd(jobId, _ => new Lock()))
        {
            if (!jobs.TryGetValue(jobId, out var current) || change(current) is not { } next)
            {
                return null;
            }

            jobs[jobId] = next;
            if (persist)
            {
                Persist(next);
            }

            return next;
        }
    }

    private void Persist(JobSnapshot snapshot)
    {
        var dir = Directory.CreateDirectory(JobDirectory(snapshot.JobId)).FullName;
        var path = Path.Combine(dir, "job.json");
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(snapshot, ModelMetadata.JsonOptions));
        File.Move(temp, path, overwrite: true);
    }
}
