using Nin.Model.Runtime;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class CudnnBenchmarkTests
{
    [Fact]
    public void The_benchmark_flag_reaches_libtorch_and_reads_back()
    {
        TorchRuntime.Initialize(new TorchOptions { Device = "cpu" });
        var before = CudnnBenchmark.Get();
        Assert.NotNull(before); // libtorch's exports were found
        try
        {
            Assert.True(CudnnBenchmark.TrySet(true));
            Assert.True(CudnnBenchmark.Get());
            Assert.True(CudnnBenchmark.TrySet(false));
            Assert.False(CudnnBenchmark.Get());
        }
        finally
        {
            CudnnBenchmark.TrySet(before!.Value);
        }
    }
}
