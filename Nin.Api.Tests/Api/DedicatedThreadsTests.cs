using Nin.Api.Infrastructure;

namespace Nin.Api.Tests.Api;

/// <summary>The export builds' threads: the same named thread for every job, results and failures back to the caller.</summary>
[UnitTests]
public sealed class DedicatedThreadsTests
{
    [Fact]
    public async Task Every_job_runs_on_the_same_thread_of_its_own_and_a_failure_comes_back()
    {
        using var threads = new DedicatedThreads("test-builder", 1);
        var first = await threads.RunAsync(() => (Environment.CurrentManagedThreadId, Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
        var second = await threads.RunAsync(() => Environment.CurrentManagedThreadId);
        Assert.Equal("test-builder-0", first.Name);
        Assert.False(first.IsThreadPoolThread);
        Assert.Equal(first.CurrentManagedThreadId, second);

        var failed = threads.RunAsync<int>(() => throw new InvalidDataException("damaged"));
        Assert.Equal("damaged", (await Assert.ThrowsAsync<InvalidDataException>(() => failed)).Message);
        Assert.Equal(second, await threads.RunAsync(() => Environment.CurrentManagedThreadId)); // the thread outlived the failure
    }

    [Fact]
    public async Task Two_threads_run_two_jobs_at_once()
    {
        using var threads = new DedicatedThreads("test-pair", 2);
        using var both = new Barrier(2);
        var jobs = Enumerable.Range(0, 2).Select(_ => threads.RunAsync(() => both.SignalAndWait(TimeSpan.FromSeconds(10)))).ToArray();
        Assert.All(await Task.WhenAll(jobs), Assert.True);
    }
}
