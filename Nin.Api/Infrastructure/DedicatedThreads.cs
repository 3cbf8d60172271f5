using System.Collections.Concurrent;

namespace Nin.Api.Infrastructure;

/// <summary>
/// A fixed number of threads of their own that run submitted jobs, one at a time each, for long CPU-bound work that
/// allocates much native memory (an export build loads a checkpoint into libtorch). The same threads every time: what
/// one job frees stays in the C allocator's arena of its thread and is reused by the next job, where a fresh thread per
/// job may be given another arena and leave each one holding a job's worth. The request thread pool is never held.
/// Threads start with the first job and end when the owner is disposed, after the jobs already submitted.
/// </summary>
public sealed class DedicatedThreads(string name, int count) : IDisposable
{
    private readonly BlockingCollection<Action> jobs = [];
    private int started;

    /// <summary>Runs <paramref name="job"/> on one of the threads; its result or exception comes back through the task.</summary>
    public Task<T> RunAsync<T>(Func<T> job)
    {
        Start();
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        jobs.Add(() =>
        {
            try
            {
                done.SetResult(job());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        return done.Task;
    }

    public void Dispose() => jobs.CompleteAdding();

    private void Start()
    {
        if (Interlocked.Exchange(ref started, 1) == 1)
        {
            return;
        }

        for (var i = 0; i < Math.Max(1, count); i++)
        {
            new Thread(() =>
            {
                foreach (var job in jobs.GetConsumingEnumerable())
                {
                    job();
                }
            })
            { IsBackground = true, Name = $"{name}-{i}" }.Start();
        }
    }
}
