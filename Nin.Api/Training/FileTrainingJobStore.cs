using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Training;

/// <summary>
/// The single-process job store: records in memory, persisted to <c>{work}/jobs/{id}/job.json</c> on every status change
/// and epoch, so a restarted service still knows every job it accepted.
/// </summary>
public sealed class FileTrainingJobStore : ITrainingJobStore
{
    private readonly ConcurrentDictionary<string, JobSnapshot> jobs = new();
    private readonly ConcurrentDictionary<string, Lock> locks = new();

    public FileTrainingJobStore(IOptions<NinOptions> options)
    {
        Root = Directory.CreateDirectory(JobFolders.Root(options.Value)).FullName;
        foreach (var job in ReadAll(Root))
        {
            jobs[job.JobId] = job;
        }
    }

    public const string FileName = "job.json";

    /// <summary>The records under <paramref name="root"/> (also read once into PostgreSQL when a deployment moves to it).</summary>
    public static IEnumerable<JobSnapshot> ReadAll(string root)
    {
        if (!Directory.Exists(root))
        {
            yield break;
        }

        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var file = Path.Combine(dir, FileName);
            JobSnapshot? job = null;
            try
            {
                job = File.Exists(file) ? JsonSerializer.Deserialize<JobSnapshot>(File.ReadAllText(file), ModelMetadata.JsonOptions) : null;
            }
            catch (JsonException)
            {
                // A record cut short by a crash: the job is unknown rather than the service down.
            }

            if (job is not null)
            {
                yield return job;
            }
        }
    }

    public string Root { get; }

    public string JobDirectory(string jobId) => Path.Combine(Root, jobId);

    public JobSnapshot Create(TrainSettings settings)
    {
        var snapshot = JobSnapshot.New(settings);
        jobs[snapshot.JobId] = snapshot;
        Persist(snapshot);
        return snapshot;
    }

    public JobSnapshot? Get(string jobId) => jobs.GetValueOrDefault(jobId);

    public IReadOnlyList<JobSnapshot> List() => jobs.Values.OrderByDescending(j => j.CreatedAt).ToArray();

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
        var path = Path.Combine(dir, FileName);
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(snapshot, ModelMetadata.JsonOptions));
        File.Move(temp, path, overwrite: true);
    }
}
