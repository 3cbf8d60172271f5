using Nin.Model.Explain;
using Nin.Model.Network;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class ClassActivationMapsTests
{
    [Theory]
    [InlineData(false, 96, "grad-cam", "block2", 10)] // class maps 1×1: the second block's 10×10
    [InlineData(false, 224, "grad-cam", "block3", 12)] // class maps 5×5: the third block's 12×12
    [InlineData(false, 320, "cam", "block4", 8)] // class maps 8×8: CAM itself
    [InlineData(true, 96, "grad-cam", "block2", 10)]
    [InlineData(true, 320, "cam", "block4", 8)]
    public void The_class_maps_serve_where_they_are_7x7_or_more_else_grad_cam_at_the_deepest_stage_that_is(bool batchNorm, int size, string method, string layer, int side)
    {
        using var net = new NinNetwork(1, 10, batchNorm);
        var plan = ClassActivationMaps.Plan(net, size);
        Assert.NotNull(plan);
        Assert.Equal((method, layer, side, side), (plan.Method, plan.Layer, plan.Width, plan.Height));
    }

    [Fact]
    public void Without_image_shaped_stages_there_is_no_plan_and_at_tiny_inputs_the_biggest_stage_serves()
    {
        Assert.Null(ClassActivationMaps.Plan(["fc"], [[1, 10]], 10));
        var plan = ClassActivationMaps.Plan(["a", "b", "c", "gap"], [[1, 8, 5, 5], [1, 8, 3, 3], [1, 10, 1, 1], [1, 10]], 10);
        Assert.Equal((ClassActivationMaps.GradCam, "a", 5), (plan!.Method, plan.Layer, plan.Width));
    }

    [Fact]
    public void Maps_are_per_image_for_the_class_asked_scaled_to_1_and_leave_no_gradients_on_the_network()
    {
        manual_seed(3);
        using var net = new NinNetwork(1, 10);
        net.eval();
        var plan = ClassActivationMaps.Plan(net, 96)!;
        using var x = rand(3, 1, 96, 96);
        var maps = ClassActivationMaps.Compute(net, plan, x, [1, 4, 9]);

        Assert.Equal([1, 4, 9], maps.Select(m => m.ClassIndex));
        Assert.All(maps, m =>
        {
            Assert.Equal(m.Width * m.Height, m.Values.Length);
            Assert.All(m.Values, v => Assert.InRange(v, 0f, 1f));
            if (m.Peak > 0)
            {
                Assert.Equal(1f, m.Values.Max());
            }
        });
        Assert.All(net.parameters(), p => Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0));

        // Image 0's map does not depend on the other images of the batch (eval mode: no interaction).
        using var first = x[..1];
        var alone = ClassActivationMaps.Compute(net, plan, first, [1])[0];
        Assert.True(maps[0].Values.Zip(alone.Values, (a, b) => Math.Abs(a - b)).Max() < 1e-4);
    }

    [Fact]
    public void The_overlay_is_a_png_of_the_input_size_and_resize_keeps_constant_maps_constant()
    {
        var map = new ActivationMap("cam", "block4", 0, 2, 2, [0, 1, 0.5f, 0.25f], 3);
        var png = HeatmapOverlay.Png(new float[16 * 16], 1, 16, map);
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.Equal((16, 16), (bitmap.Width, bitmap.Height));
        Assert.All(HeatmapOverlay.Resize([0.5f, 0.5f, 0.5f, 0.5f], 2, 2, 7, 5), v => Assert.Equal(0.5f, v, 5));
    }
}
