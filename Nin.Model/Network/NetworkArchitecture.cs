namespace Nin.Model.Network;

/// <summary>
/// One network design in the registry: how to build it and what is known about it before any tensor
/// work (smallest input, parameters, training memory). Training, checkpoints, serving and the API's
/// checks read these; none of them builds a network by itself.
/// </summary>
public sealed class NetworkArchitecture
{
    private readonly Func<int, int, ImageClassifier> create;
    private readonly Func<int, int, long> parameterCount;
    private readonly Func<int, int, int, long> bytesPerImage;

    internal NetworkArchitecture(
        string name,
        string description,
        int minInputSize,
        Func<int, int, ImageClassifier> create,
        Func<int, int, long> parameterCount,
        Func<int, int, int, long> bytesPerImage)
    {
        Name = name;
        Description = description;
        MinInputSize = minInputSize;
        this.create = create;
        this.parameterCount = parameterCount;
        this.bytesPerImage = bytesPerImage;
    }

    /// <summary>The name jobs choose it by and <c>model.json</c> records.</summary>
    public string Name { get; }

    public string Description { get; }

    /// <summary>The smallest square input side the network takes.</summary>
    public int MinInputSize { get; }

    /// <summary>The largest input side accepted (far beyond any sensible input).</summary>
    public int MaxInputSize => NinGeometry.MaximumImageSize;

    /// <summary>A freshly initialised network (seed Torch first for reproducible weights).</summary>
    public ImageClassifier Create(int inputChannels, int classes) => create(inputChannels, classes);

    /// <summary>Trainable parameters of the network for these channels and classes.</summary>
    public long ParameterCount(int inputChannels, int classes) => parameterCount(inputChannels, classes);

    /// <summary>A rough upper bound of the memory one training image takes at <paramref name="imageSize"/> px.</summary>
    public long BytesPerImage(int imageSize, int inputChannels = 1, int classes = 10) => bytesPerImage(imageSize, inputChannels, classes);

    /// <summary>Throws a clear <see cref="ArgumentOutOfRangeException"/> for an input side this network cannot take.</summary>
    public void EnsureImageSize(int side, string paramName = "imageSize")
    {
        if (side < MinInputSize)
        {
            throw new ArgumentOutOfRangeException(paramName, side,
                $"The {Name} network needs images of at least {MinInputSize}×{MinInputSize} pixels (smaller inputs vanish in its max-pools); got {side}×{side}.");
        }

        if (side > MaxInputSize)
        {
            throw new ArgumentOutOfRangeException(paramName, side,
                $"Image size {side} is larger than the supported maximum of {MaxInputSize} pixels.");
        }
    }

    public override string ToString() => Name;
}
