using Nin.Model.Checkpoints;
using Nin.Model.Network;

namespace Nin.Api.Serving;

/// <summary>
/// A checkpoint loaded for serving: its own network instance in eval mode (never the one being
/// trained). Reference counted, so a retired version is disposed only after its last request.
/// </summary>
public sealed class LoadedModel
{
    private readonly Lock gate = new();
    private int users;
    private bool retired;

    public LoadedModel(string name, int version, ImageClassifier network, ModelMetadata metadata, TorchSharp.torch.Device device)
    {
        TorchDevice = device;
        Name = name;
        Version = version;
        Network = network;
        Metadata = metadata;
        Device = device.ToString();
    }

    public string Name { get; }

    public int Version { get; }

    public ImageClassifier Network { get; }

    public ModelMetadata Metadata { get; }

    /// <summary>The device name, as responses report it.</summary>
    public string Device { get; }

    /// <summary>Where the network's weights live; each batch's input goes there.</summary>
    public TorchSharp.torch.Device TorchDevice { get; }

    public bool IsDisposed { get; private set; }

    /// <summary>Takes a reference; false once the model is retired.</summary>
    public bool TryAcquire()
    {
        lock (gate)
        {
            if (retired)
            {
                return false;
            }

            users++;
            return true;
        }
    }

    /// <summary>
    /// One more reference for a holder of one (a queued work item of a request that holds its own): it keeps the network
    /// alive even if the version is retired meanwhile.
    /// </summary>
    public void AddReference()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(IsDisposed || users < 1, this);
            users++;
        }
    }

    public void Release()
    {
        lock (gate)
        {
            users--;
            DisposeIfDone();
        }
    }

    /// <summary>No new requests; disposes once those in flight are done.</summary>
    public void Retire()
    {
        lock (gate)
        {
            retired = true;
            DisposeIfDone();
        }
    }

    private void DisposeIfDone()
    {
        if (retired && users == 0 && !IsDisposed)
        {
            IsDisposed = true;
            Network.Dispose();
        }
    }
}
