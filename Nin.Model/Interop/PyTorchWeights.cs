using Nin.Model.Archives;
using Nin.Model.Network;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Nin.Model.Interop;

/// <summary>
/// PyTorch's <c>torch.save(state_dict)</c> files: a zip holding a pickle (<c>data.pkl</c>) and the raw storages
/// (<c>data/0</c>, <c>data/1</c>, …). Read by this service's own zip index and restricted pickle reader, entirely in
/// managed memory (no libtorch, so no native message or tensor can leak): the zip's entry count comes from its
/// end record; the pickle is read without running anything; names and shapes are checked against the architecture;
/// every tensor's view must lie inside its storage; then each storage is inflated once, and the bytes inflated
/// (per storage) and referenced (per tensor) are each held to what the architecture's parameters take as float64.
/// Written with TorchSharp.PyBridge.
/// </summary>
public static class PyTorchWeights
{
    /// <summary>
    /// The tensors <paramref name="schema"/> expects, as float32 in its order. Throws <see cref="WeightsFormatException"/>
    /// with a message fit for the client for anything else.
    /// </summary>
    public static IReadOnlyList<NamedTensor> Read(Stream file, StateDictSchema schema, CancellationToken cancellationToken = default)
    {
        ZipIndex zip;
        try
        {
            zip = ZipIndex.Read(file, maxEntries: (2 * schema.TensorCount) + 16, cancellationToken);
        }
        catch (ZipFormatException ex)
        {
            throw new WeightsFormatException($"Not a PyTorch file that can be read: {ex.Message} (torch.save writes a zip archive, PyTorch 1.6 or newer; the legacy format is not read).");
        }

        try
        {
            return Read(zip, schema, cancellationToken);
        }
        catch (ZipFormatException ex)
        {
            throw new WeightsFormatException($"The PyTorch file is damaged: {ex.Message}");
        }
    }

    private static IReadOnlyList<NamedTensor> Read(ZipIndex zip, StateDictSchema schema, CancellationToken cancellationToken)
    {
        var pickle = zip.Entries.FirstOrDefault(e => e.Name == "data.pkl" || (e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Depth == 2))
            ?? throw new WeightsFormatException("The zip archive has no data.pkl: it is not a torch.save file.");
        var prefix = pickle.Name[..^"data.pkl".Length];
        var maxPickleBytes = (64 * 1024) + (schema.TensorCount * 1024);
        if (pickle.Length > maxPickleBytes)
        {
            throw new WeightsFormatException($"data.pkl declares {pickle.Length:N0} bytes; a state_dict of this architecture's {schema.TensorCount} tensors needs far less (the limit is {maxPickleBytes:N0}).");
        }

        if (zip.Entries.FirstOrDefault(e => e.Name == prefix + "byteorder") is { Length: <= 16 } order
            && System.Text.Encoding.ASCII.GetString(zip.ReadAll(order, cancellationToken)).Trim() != "little")
        {
            throw new WeightsFormatException("The PyTorch file was written big-endian; only little-endian files are read.");
        }

        var items = StateDictPickle.Read(zip.ReadAll(pickle, cancellationToken), cancellationToken);
        if (items.Count > 2 * schema.TensorCount)
        {
            throw new WeightsFormatException($"The state_dict has {items.Count:N0} entries; this architecture has {schema.TensorCount} tensors.");
        }

        var tensors = new List<(string Name, PickledTensor Tensor)>(items.Count);
        foreach (var (key, value) in items)
        {
            if (key is not string name)
            {
                throw new WeightsFormatException($"The state_dict has a key that is not a string ({Describe(key)}): keys name parameters, like '0.0.weight'.");
            }

            if (value is not PickledTensor tensor)
            {
                throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' is not a tensor: the file must hold a state_dict (torch.save(net.state_dict(), path)).");
            }

            tensors.Add((name, tensor));
        }

        // Names, shapes and the count fit the architecture (module order, so the first misfit named is the first in the network).
        tensors.Sort((a, b) => ModuleOrder.Instance.Compare(a.Name, b.Name));
        var keys = schema.Resolve(tensors.Select(t => new DeclaredTensor(t.Name, t.Tensor.Shape)).ToArray());

        // Every view inside its storage, every storage the size it declares, and the bytes inflated and referenced
        // bounded, all before a storage is inflated.
        var storages = new Dictionary<string, (Archives.ZipEntryInfo Entry, int ElementSize)>(StringComparer.Ordinal);
        long referenced = 0;
        foreach (var (name, t) in tensors)
        {
            var size = t.Storage.Dtype is { } dtype ? ElementDecoder.Size(dtype)!.Value
                : throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' has dtype {t.Storage.TypeName}; floating-point weights are needed.");
            var span = Span(name, t);
            if (span > t.Storage.Elements)
            {
                throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' reads past the end of its storage ({t.Storage.Elements:N0} elements).");
            }

            referenced += span * size;
            if (!storages.ContainsKey(t.Storage.Key))
            {
                var entry = zip.Entries.FirstOrDefault(e => e.Name == prefix + "data/" + t.Storage.Key)
                    ?? throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' refers to storage '{StateDictSchema.Printable(t.Storage.Key)}', which the zip does not hold.");
                if (entry.Length != checked(t.Storage.Elements * size))
                {
                    throw new WeightsFormatException($"Storage '{StateDictSchema.Printable(t.Storage.Key)}' declares {t.Storage.Elements:N0} {t.Storage.TypeName} elements and holds {entry.Length:N0} bytes.");
                }

                storages[t.Storage.Key] = (entry, size);
            }
        }

        var inflated = storages.Values.Sum(s => s.Entry.Length);
        if (inflated > schema.MaxDataBytes || referenced > schema.MaxDataBytes)
        {
            throw new WeightsFormatException(
                $"The file's storages take {inflated:N0} bytes and its tensors refer to {referenced:N0}; this architecture's parameters take at most {schema.MaxDataBytes:N0} (as float64).");
        }

        // Each storage inflated once; its tensors copied out; then it is dropped.
        var result = new List<NamedTensor>(tensors.Count);
        foreach (var group in tensors.Select((t, i) => (t.Tensor, Key: keys[i])).GroupBy(t => t.Tensor.Storage.Key))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var bytes = zip.ReadAll(storages[group.Key].Entry, cancellationToken);
            foreach (var (tensor, key) in group)
            {
                result.Add(new NamedTensor(key, tensor.Shape, Gather(bytes, tensor, storages[group.Key].ElementSize)));
            }
        }

        return schema.InOrder(result);
    }

    /// <summary>The elements a view spans in its storage (offset to its last element, inclusive); throws for negative offsets or strides.</summary>
    private static long Span(string name, PickledTensor t)
    {
        if (t.Offset < 0 || t.Stride.Length != t.Shape.Length || t.Stride.Any(s => s < 0))
        {
            throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' has a negative offset or stride, or a stride that does not fit its shape.");
        }

        try
        {
            var last = t.Offset;
            for (var d = 0; d < t.Shape.Length; d++)
            {
                last = checked(last + ((t.Shape[d] - 1) * t.Stride[d]));
            }

            return checked(last + 1);
        }
        catch (OverflowException)
        {
            throw new WeightsFormatException($"'{StateDictSchema.Printable(name)}' has an offset or strides out of range.");
        }
    }

    /// <summary>The view's elements in row-major order, as float32.</summary>
    private static float[] Gather(byte[] storage, PickledTensor t, int size)
    {
        var count = t.Shape.Aggregate(1L, (a, d) => a * d);
        var values = new float[count];
        var dtype = t.Storage.Dtype!;
        var index = new long[t.Shape.Length];
        for (long i = 0; i < count; i++)
        {
            var element = t.Offset;
            for (var d = 0; d < index.Length; d++)
            {
                element += index[d] * t.Stride[d];
            }

            values[i] = ElementDecoder.Read(storage.AsSpan((int)(element * size), size), dtype);
            for (var d = index.Length - 1; d >= 0 && ++index[d] == t.Shape[d]; d--)
            {
                index[d] = 0;
            }
        }

        return values;
    }

    private static string Describe(object? key) => key switch
    {
        null => "None",
        long n => $"the integer {n}",
        double x => $"the number {x.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        bool b => b ? "True" : "False",
        _ => "a " + key.GetType().Name switch { "Object[]" => "tuple", "Byte[]" => "bytes object", _ => "non-string object" },
    };

    /// <summary>Writes a state_dict PyTorch's <c>torch.load</c> reads (keys in the given order).</summary>
    public static void Write(IReadOnlyList<NamedTensor> tensors, Stream output)
    {
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor>();
        foreach (var t in tensors)
        {
            state[t.Name] = tensor(t.Values, t.Shape);
        }

        PyTorchPickler.PickleStateDict(output, state, leaveOpen: true);
    }

    /// <summary>Dotted state_dict keys in module order: numeric parts by value, a module's weight before its bias.</summary>
    private sealed class ModuleOrder : IComparer<string>
    {
        public static readonly ModuleOrder Instance = new();

        private static readonly string[] Leaves = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"];

        public int Compare(string? x, string? y)
        {
            var a = (x ?? "").Split('.');
            var b = (y ?? "").Split('.');
            for (var i = 0; i < Math.Min(a.Length, b.Length); i++)
            {
                var c = Part(a[i], b[i]);
                if (c != 0)
                {
                    return c;
                }
            }

            return a.Length.CompareTo(b.Length);
        }

        private static int Part(string a, string b)
        {
            if (long.TryParse(a, out var na) && long.TryParse(b, out var nb))
            {
                return na.CompareTo(nb);
            }

            int ra = Array.IndexOf(Leaves, a), rb = Array.IndexOf(Leaves, b);
            return ra >= 0 && rb >= 0 ? ra.CompareTo(rb) : string.CompareOrdinal(a, b);
        }
    }
}
