using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Nin.Model.Training;

/// <summary>
/// Random shifts and horizontal flips of a training batch, on the batch's device as one affine
/// resampling (edges repeated, like serving's border padding). The random numbers come from a
/// generator the caller seeds per (seed, epoch), so a run, resumed or not, sees the same pictures.
/// </summary>
public static class Augmentation
{
    public static bool IsActive(TrainingOptions options) => options.Shift > 0 || options.Flip;

    /// <summary>
    /// <paramref name="x"/>: floats [N, C, S, S]. Each image is shifted by up to ±<paramref name="shift"/> of its side in
    /// x and y, and with <paramref name="flip"/> mirrored with probability ½. Call inside the batch's dispose scope.
    /// </summary>
    public static Tensor Apply(Tensor x, double shift, bool flip, Generator generator)
    {
        var n = x.shape[0];
        // Drawn on the CPU from the epoch's generator (deterministic), then moved to the batch's device.
        var u = rand([n, 3], generator: generator).to(x.device);
        var sx = flip ? 1 - (2 * u.select(1, 0).lt(0.5).to_type(ScalarType.Float32)) : ones(n, device: x.device);
        // Normalised coordinates span 2 per side: a shift of f of the side is 2f.
        var tx = ((u.select(1, 1) * 2) - 1) * (2 * shift);
        var ty = ((u.select(1, 2) * 2) - 1) * (2 * shift);
        var zero = zeros(n, device: x.device);
        var one = ones(n, device: x.device);
        var theta = stack([sx, zero, tx, zero, one, ty], 1).view(n, 2, 3).to_type(x.dtype);
        var grid = affine_grid(theta, [n, x.shape[1], x.shape[2], x.shape[3]], align_corners: false);
        return grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
    }
}
