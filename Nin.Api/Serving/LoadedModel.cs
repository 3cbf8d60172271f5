using Nin.Model.Checkpoints;

namespace Nin.Api.Serving;

/// <summary>
/// A checkpoint loaded for serving by an engine (<see cref="IModelRunner"/>): its own network instance or ONNX
/// Runtime session (never the network being trained). Reference counted, so a retired version is disposed only
/// after its last request.
/// </summary>
public sealed class LoadedModel
{
    private readonly Lock gate = new();
    private int users;
    private bool retired;

    private double imageMilliseconds;

    public LoadedModel(string name, int version, IModelRunner runner, ModelMetadata metadata, PrecisionChoice? precision = null)
    {
        Name = name;
        Version = version;
        VersionText = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Runner = runner;
        Metadata = metadata;
        Precision = precision ?? new PrecisionChoice(ServingPrecision.Fp32, "Serving:Precision is fp32");
    }

    public string Name { get; }

    public int Version { get; }

    /// <summary>The version as the protocols and metric labels write it.</summary>
    public string VersionText { get; }

    /// <summary>
    /// Estimated time of one image in a forward pass of one inference worker under load, in milliseconds: measured when
    /// the version loads, then followed (a moving average) from the passes that ran on one thread. Admission weighs
    /// queued work with it.
    /// </summary>
    public double ImageMilliseconds => Volatile.Read(ref imageMilliseconds);

    /// <summary>Folds one measured time per image into <see cref="ImageMilliseconds"/> (the first sets it).</summary>
    public void ObserveImageMilliseconds(double milliseconds)
    {
        if (!double.IsFinite(milliseconds) || milliseconds <= 0)
        {
            return;
        }

        double seen, next;
        do
        {
            seen = Volatile.Read(ref imageMilliseconds);
            next = seen == 0 ? milliseconds : (0.9 * seen) + (0.1 * milliseconds);
        }
        while (Interlocked.CompareExchange(ref imageMilliseconds, next, seen) != seen);
    }

    /// <summary>The engine running this version's forward passes.</summary>
    public IModelRunner Runner { get; }

    public ModelMetadata Metadata { get; }

    /// <summary>The device name, as responses report it.</summary>
    public string Device => Runner.Device;

    /// <summary>The engine's name, as responses report it.</summary>
    public string Engine => Runner.Engine;

    /// <summary>The number format its forward passes run in, and why that one.</summary>
    public PrecisionChoice Precision { get; }

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
            Runner.Dispose();
        }
    }
}
