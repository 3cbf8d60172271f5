namespace Nin.Model.Network;

/// <summary>
/// One network design in the registry: how to build it, its layer description (what the ONNX exporter and the weight
/// import/export read), and what is known about it before any tensor work (input sizes, parameters, training memory).
/// Training, checkpoints, serving, export and the API's checks read these; none of them builds or describes a network
/// by itself, and none assumes NiN. Register one with <see cref="NetworkArchitectures.Register"/>.
/// </summary>
public sealed class NetworkArchitecture
{
    private readonly Func<int, int, ImageClassifier> create;
    private readonly Func<int, int, IReadOnlyList<NinLayer>> layers;
    private readonly Func<int, int, long> parameterCount;
    private readonly Func<int, int, int, long> bytesPerImage;

    /// <param name="name">The name jobs choose it by and <c>model.json</c> records (lower case, digits and '-').</param>
    /// <param name="description">One sentence for <c>GET /recipes</c>.</param>
    /// <param name="create">A freshly initialised network; its <see cref="ImageClassifier.Architecture"/> must be <paramref name="name"/>.</param>
    /// <param name="layers">The forward pass as <see cref="NinLayer"/>s, with each convolution's parameter names (<see cref="ConvLayer"/>).</param>
    /// <param name="maxInputSize">The largest square input side accepted.</param>
    /// <param name="pyTorchWeights">
    /// Whether the layers' <see cref="ConvLayer.Key"/>s are the state_dict keys of a PyTorch module (d2l's <c>nn.Sequential</c>
    /// for <c>nin</c>) and no convolution has a BatchNorm: then its weights are exported as safetensors/PyTorch and imported back.
    /// </param>
    /// <param name="minInputSize">The smallest input side; by default the smallest one that leaves a feature map after the layers.</param>
    /// <param name="parameterCount">Trainable parameters for (channels, classes); by default counted from the layers.</param>
    /// <param name="bytesPerImage">Training memory of one image for (side, channels, classes); by default a rough figure from the layers.</param>
    public NetworkArchitecture(
        string name,
        string description,
        Func<int, int, ImageClassifier> create,
        Func<int, int, IReadOnlyList<NinLayer>> layers,
        int maxInputSize,
        bool pyTorchWeights = false,
        int? minInputSize = null,
        Func<int, int, long>? parameterCount = null,
        Func<int, int, int, long>? bytesPerImage = null)
    {
        if (string.IsNullOrEmpty(name) || !name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
        {
            throw new ArgumentException($"An architecture's name is lower-case letters, digits and '-'; got '{name}'.", nameof(name));
        }

        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInputSize, 1);
        Name = name;
        Description = description ?? "";
        MaxInputSize = maxInputSize;
        PyTorchWeights = pyTorchWeights;
        this.create = create;
        this.layers = layers;
        this.parameterCount = parameterCount ?? ((c, k) => NinLayers.ParameterCount(Layers(c, k)));
        this.bytesPerImage = bytesPerImage ?? ((s, c, k) => NinLayers.TrainingBytesPerImage(Layers(c, k), s, c));
        MinInputSize = minInputSize ?? SmallestInput(layers(1, 2), maxInputSize)
            ?? throw new ArgumentException($"No input of at most {maxInputSize} px leaves a feature map after the layers of '{name}'.", nameof(layers));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinInputSize, 1, nameof(minInputSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MinInputSize, maxInputSize, nameof(minInputSize));
    }

    /// <summary>The name jobs choose it by and <c>model.json</c> records.</summary>
    public string Name { get; }

    public string Description { get; }

    /// <summary>The smallest square input side the network takes.</summary>
    public int MinInputSize { get; }

    /// <summary>The largest input side accepted.</summary>
    public int MaxInputSize { get; }

    /// <summary>
    /// Whether weights travel as a PyTorch state_dict (safetensors or <c>torch.save</c>) under the layers' keys: only then
    /// do export's <c>safetensors</c>/<c>pytorch</c> forms and the weights import take it.
    /// </summary>
    public bool PyTorchWeights { get; }

    /// <summary>
    /// A freshly initialised network (seed Torch first for reproducible weights). One that names another architecture, or
    /// other channels or classes, is refused: checkpoints and exports would describe it as that other network.
    /// </summary>
    public ImageClassifier Create(int inputChannels, int classes)
    {
        var network = create(inputChannels, classes);
        if (!string.Equals(network.Architecture, Name, StringComparison.Ordinal) || network.InputChannels != inputChannels || network.Classes != classes)
        {
            var made = $"'{network.Architecture}' ({network.InputChannels} channels, {network.Classes} classes)";
            network.Dispose();
            throw new InvalidOperationException($"The '{Name}' architecture built a {made} network for {inputChannels} channels and {classes} classes.");
        }

        return network;
    }

    /// <summary>The layers in forward order, with each convolution's parameter names and shapes.</summary>
    public IReadOnlyList<NinLayer> Layers(int inputChannels, int classes) => layers(inputChannels, classes);

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

    private static int? SmallestInput(IReadOnlyList<NinLayer> layers, int max)
    {
        for (var side = 1; side <= max; side++)
        {
            if (NinLayers.OutputSide(layers, side) >= 1)
            {
                return side;
            }
        }

        return null;
    }
}
