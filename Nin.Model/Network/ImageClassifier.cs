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

    /// <summary>
    /// The network's stages in order, each image tensor in and out, their outputs chained to the class scores: what
    /// class activation maps (<see cref="Explain.ClassActivationMaps"/>) look inside. By default the children of the
    /// network's one <c>Sequential</c>; empty (no maps) for a network built otherwise that does not say.
    /// </summary>
    public virtual IReadOnlyList<(string Name, nn.Module<Tensor, Tensor> Stage)> Stages
    {
        get
        {
            var children = named_children().ToList();
            return children.Count == 1 && children[0].module is TorchSharp.Modules.Sequential sequential
                ? [.. sequential.named_children().Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module))]
                : [];
        }
    }
}
