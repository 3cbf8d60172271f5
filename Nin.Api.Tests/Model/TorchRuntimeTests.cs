using Nin.Model.Runtime;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class TorchRuntimeTests
{
    [Fact]
    public async Task Confined_threads_run_torch_single_threaded_while_own_threads_get_the_configured_count()
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu" });
        TorchRuntime.ConfineOtherThreads();

        // A thread that never chose runs Torch on one thread (no OpenMP team of its own).
        var incidental = 0;
        var thread = new Thread(() => incidental = get_num_threads());
        thread.Start();
        thread.Join();
        Assert.Equal(1, incidental);

        // Training's thread, and any thread that asks, gets what was configured; the count is per thread.
        var own = await TorchRuntime.RunOnOwnThread("test-own", () => (Count: get_num_threads(), Name: Thread.CurrentThread.Name));
        Assert.Equal((info.Threads, "test-own"), own);

        var asked = 0;
        thread = new Thread(() =>
        {
            TorchRuntime.UseThreads(1);
            TorchRuntime.UseThreads();
            asked = get_num_threads();
        });
        thread.Start();
        thread.Join();
        Assert.Equal(info.Threads, asked);

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => TorchRuntime.RunOnOwnThread<int>("test-fail", () => throw new InvalidOperationException("boom")));
        Assert.Equal("boom", failure.Message);
    }
}
