namespace Nin.Model.Training;

/// <summary>
/// <see cref="Preprocess.ToNetworkInput"/> without Torch, for engines that are not Torch (ONNX Runtime): bytes
/// (N×C×h×w, 0–255) become floats x/255 resized bilinearly (align_corners=false, no antialiasing) to S×S, with
/// PyTorch's CPU kernel's arithmetic (source index (d + 0.5)·in/out − 0.5, clamped at 0; float weights).
/// </summary>
public static class ManagedPreprocess
{
    public static void ToNetworkInput(ReadOnlySpan<byte> bytes, int planes, int height, int width, int imageSize, Span<float> destination)
    {
        if (bytes.Length != planes * height * width)
        {
            throw new ArgumentException($"Expected {planes}×{height}×{width} bytes; got {bytes.Length}.", nameof(bytes));
        }

        if (destination.Length != planes * imageSize * imageSize)
        {
            throw new ArgumentException($"Expected room for {planes}×{imageSize}×{imageSize} floats; got {destination.Length}.", nameof(destination));
        }

        if (height == imageSize && width == imageSize)
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                destination[i] = bytes[i] / 255f;
            }

            return;
        }

        Span<int> y0 = stackalloc int[imageSize], y1 = stackalloc int[imageSize], x0 = stackalloc int[imageSize], x1 = stackalloc int[imageSize];
        Span<float> ly = stackalloc float[imageSize], lx = stackalloc float[imageSize];
        Weights(height, imageSize, y0, y1, ly);
        Weights(width, imageSize, x0, x1, lx);
        var plane = new float[height * width];
        for (var p = 0; p < planes; p++)
        {
            var source = bytes.Slice(p * height * width, height * width);
            for (var i = 0; i < plane.Length; i++)
            {
                plane[i] = source[i] / 255f;
            }

            var target = destination.Slice(p * imageSize * imageSize, imageSize * imageSize);
            for (var y = 0; y < imageSize; y++)
            {
                float h1 = ly[y], h0 = 1f - h1;
                var r0 = y0[y] * width;
                var r1 = y1[y] * width;
                for (var x = 0; x < imageSize; x++)
                {
                    float w1 = lx[x], w0 = 1f - w1;
                    target[(y * imageSize) + x] =
                        (h0 * ((w0 * plane[r0 + x0[x]]) + (w1 * plane[r0 + x1[x]]))) +
                        (h1 * ((w0 * plane[r1 + x0[x]]) + (w1 * plane[r1 + x1[x]])));
                }
            }
        }
    }

    private static void Weights(int input, int output, Span<int> i0, Span<int> i1, Span<float> lambda)
    {
        var scale = (float)input / output;
        for (var d = 0; d < output; d++)
        {
            var source = Math.Max((scale * (d + 0.5f)) - 0.5f, 0f);
            var index = Math.Min((int)source, input - 1);
            i0[d] = index;
            i1[d] = Math.Min(index + 1, input - 1);
            lambda[d] = Math.Min(source - index, 1f);
        }
    }
}
