using Nin.Model.Runtime;

namespace Nin.Api.Tests.Model;

/// <summary>
/// Training trusts the CPU's float32 convolution gradients: the start-up check compares them with float64 and, on a
/// host where oneDNN's are wrong, turns it off (an AMD EPYC virtual machine that reports no cache sizes gave NaN from
/// the second call on). On every host these tests run on, the kernels in use must give the right gradients.
/// </summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class CpuGradientCheckTests
{
    [Fact]
    public void The_kernels_chosen_at_start_up_give_float32_gradients_that_match_float64_call_after_call()
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu" });
        Assert.True(info.CpuGradients.Correct, info.CpuGradients.Summary);
        Assert.True(info.CpuGradients.Error <= CpuGradientCheck.Tolerance, info.CpuGradients.Summary);
        for (var call = 0; call < 3; call++)
        {
            var error = CpuGradientCheck.MeasureError();
            Assert.True(error <= CpuGradientCheck.Tolerance, $"call {call}: relative error {error} against float64 ({info.CpuGradients.Summary})");
        }
    }

    [Fact]
    public void OneDnn_can_be_turned_off_and_libtorch_own_kernels_then_give_the_same_gradients()
    {
        var info = TorchRuntime.Initialize(new TorchOptions { Device = "cpu" });
        var before = OneDnn.Get();
        Assert.NotNull(before); // libtorch's exports were found
        try
        {
            var off = CpuGradientCheck.Run("off");
            Assert.False(OneDnn.Get());
            Assert.False(OneDnn.NnpackEnabled()); // libtorch's own kernels, the ones checked; no warning per convolution
            Assert.Equal(false, off.OneDnn);
            Assert.True(off.Correct, off.Summary);
            Assert.Contains("oneDNN off by Torch:OneDnn", off.Summary, StringComparison.Ordinal);

            Assert.True(OneDnn.TrySet(true));
            Assert.True(OneDnn.Get());
            Assert.True(OneDnn.NnpackEnabled());

            // auto keeps oneDNN where its gradients are right and turns it off where they are not: either way the
            // kernels left in use are right.
            var auto = CpuGradientCheck.Run("auto");
            Assert.True(auto.Correct, auto.Summary);
            Assert.Equal(auto.OneDnn, OneDnn.Get());
            Assert.True(CpuGradientCheck.MeasureError() <= CpuGradientCheck.Tolerance);
        }
        finally
        {
            OneDnn.TrySet(before!.Value);
        }

        Assert.Equal(info.CpuGradients.OneDnn, OneDnn.Get());
    }
}
