using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Nin.Model.Training;

/// <summary>
/// The one preprocessing step training and serving share: bytes (N×C×h×w, 0–255) on the device
/// become float inputs scaled to [0, 1] and resized bilinearly to the model's image size.
/// </summary>
public static class Preprocess
{
    public static Tensor ToNetworkInput(Tensor bytes, int imageSize)
    {
        var x = bytes.to_type(ScalarType.Float32).div_(255f);
        if (x.shape[2] == imageSize && x.shape[3] == imageSize)
        {
            return x;
        }

        return interpolate(x, size: [imageSize, imageSize], mode: InterpolationMode.Bilinear, align_corners: false);
    }
}
