using static TorchSharp.torch;

namespace Nin.Model.Network;

/// <summary>
/// What training, checkpoints and serving need of a network: images [N, C, S, S] in, one logit per
/// class out, and the registry name of its architecture (<see cref="NetworkArchitectures"/>).
/// </summary>
public abstract class ImageClassifier : nn.Module<Tensor, Tensor>
{
    protected ImageClassifier(string name, string architecture, int inputChannels, int classes) : base(name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        Architecture = architecture;
        InputChannels = inputChannels;
        Classes = classes;
    }

    /// <summary>The registry name (<c>nin</c>, <c>nin-bn</c>) that <c>model.json</c> records.</summary>
    public string Architecture { get; }

    public int InputChannels { get; }

    public int Classes { get; }
}
