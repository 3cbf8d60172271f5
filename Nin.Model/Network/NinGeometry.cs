namespace Nin.Model.Network;

/// <summary>
/// Spatial arithmetic of the d2l NiN, computed from its layers rather than copied, so input sizes
/// can be checked before any tensor work.
/// </summary>
public static class NinGeometry
{
    /// <summary>The smallest square input whose feature map survives the three 3×3/2 max-pools.</summary>
    public static readonly int MinimumImageSize = FindMinimumImageSize();

    /// <summary>The largest image side we accept; far beyond any sensible NiN input.</summary>
    public const int MaximumImageSize = 1024;

    /// <summary>Feature-map side after the last max-pool, or 0 if the input does not survive.</summary>
    public static int FeatureMapSize(int side)
    {
        static int Conv(int n, int k, int s, int p) => n + (2 * p) < k ? 0 : ((n + (2 * p) - k) / s) + 1;
        static int Pool(int n) => Conv(n, 3, 2, 0);

        var n = Conv(side, 11, 4, 0);  // block1
        n = Pool(n);
        n = Conv(n, 5, 1, 2);          // block2
        n = Pool(n);
        n = Conv(n, 3, 1, 1);          // block3
        n = Pool(n);
        return Conv(n, 3, 1, 1);       // block4 (global average pooling follows)
    }

    /// <summary>
    /// Parameters of a NiN with the given input channels and classes: each block has a k×k
    /// convolution (in·out·k² + out) and two 1×1 convolutions (out² + out each).
    /// </summary>
    public static long ParameterCount(int inputChannels, int classes) => ParameterCount(inputChannels, classes, batchNorm: false);

    /// <summary>
    /// With <paramref name="batchNorm"/> (<c>nin-bn</c>) the convolutions have no bias and each is followed by a
    /// BatchNorm with a weight and a bias per channel: out more per convolution.
    /// </summary>
    public static long ParameterCount(int inputChannels, int classes, bool batchNorm)
    {
        long Block(long inC, long outC, long k) =>
            (inC * outC * k * k) + (2 * outC * outC) + (batchNorm ? 6 * outC : 3 * outC);
        return Block(inputChannels, 96, 11) + Block(96, 256, 5) + Block(256, 384, 3) + Block(384, classes, 3);
    }

    /// <summary>
    /// A rough upper bound of the bytes one training image needs at <paramref name="side"/> px: the feature maps of
    /// every stage kept for the backward pass, their gradients and working space (floats of 4 bytes, ×3);
    /// BatchNorm keeps one more map per convolution.
    /// </summary>
    public static long TrainingBytesPerImage(int side, int inputChannels, int classes, bool batchNorm)
    {
        static long Conv(long n, int k, int s, int p) => ((n + (2 * p) - k) / s) + 1;
        static long Pool(long n) => ((n - 3) / 2) + 1;
        long n1 = Conv(side, 11, 4, 0), p1 = Pool(n1), p2 = Pool(p1), p3 = Pool(p2);
        var convMaps = (3 * 96 * n1 * n1) + (3 * 256 * p1 * p1) + (3 * 384 * p2 * p2) + (3 * classes * p3 * p3);
        var floats = ((long)inputChannels * side * side) + convMaps + (96 * p1 * p1) + (256 * p2 * p2) + (384 * p3 * p3 * 2);
        if (batchNorm)
        {
            floats += convMaps / 2;
        }

        return floats * 4 * 3;
    }

    /// <summary>Throws a clear <see cref="ArgumentException"/> if an image side cannot pass through the NiN.</summary>
    public static void EnsureImageSize(int side, string paramName = "imageSize")
    {
        if (side < MinimumImageSize)
        {
            throw new ArgumentOutOfRangeException(paramName, side,
                $"The NiN needs images of at least {MinimumImageSize}×{MinimumImageSize} pixels (smaller inputs vanish in its three max-pools); got {side}×{side}.");
        }

        if (side > MaximumImageSize)
        {
            throw new ArgumentOutOfRangeException(paramName, side,
                $"Image size {side} is larger than the supported maximum of {MaximumImageSize} pixels.");
        }
    }

    /// <summary>Validates an NCHW shape against the network before any tensor work.</summary>
    public static void EnsureInputShape(long[] shape, int channels)
    {
        if (shape.Length != 4)
        {
            throw new ArgumentException($"The NiN takes a batch of images shaped [N, C, H, W]; got a tensor of rank {shape.Length}.", nameof(shape));
        }

        if (shape[1] != channels)
        {
            throw new ArgumentException($"This network takes {channels}-channel images; got {shape[1]} channels.", nameof(shape));
        }

        var side = (int)Math.Min(shape[2], shape[3]);
        if (side < MinimumImageSize)
        {
            throw new ArgumentException(
                $"The NiN needs images of at least {MinimumImageSize}×{MinimumImageSize} pixels (smaller inputs vanish in its three max-pools); got {shape[2]}×{shape[3]}.",
                nameof(shape));
        }
    }

    private static int FindMinimumImageSize()
    {
        var side = 1;
        while (FeatureMapSize(side) < 1)
        {
            side++;
        }

        return side;
    }
}
