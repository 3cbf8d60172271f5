using System.Collections;
using System.IO.Compression;
using Nin.Model.Network;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Nin.Model.Interop;

/// <summary>
/// PyTorch's <c>torch.save(state_dict)</c> files (a zip holding a pickle and the raw storages), read and written with
/// TorchSharp.PyBridge. Before unpickling, the archive's declared sizes are checked, so a file cannot make the reader
/// allocate more than the limit whatever its entries claim.
/// </summary>
public static class PyTorchWeights
{
    /// <summary>The state_dict's tensors as float32, in module order.</summary>
    public static IReadOnlyList<NamedTensor> Read(Stream file, long maxUncompressedBytes)
    {
        if (!file.CanSeek)
        {
            throw new ArgumentException("The stream must be seekable.", nameof(file));
        }

        try
        {
            using (var zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true))
            {
                long total = 0;
                foreach (var entry in zip.Entries)
                {
                    total += entry.Length;
                    if (entry.Length < 0 || total > maxUncompressedBytes)
                    {
                        throw new WeightsFormatException($"The archive unpacks to more than {maxUncompressedBytes:N0} bytes.");
                    }
                }

                if (!zip.Entries.Any(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl"))
                {
                    throw new WeightsFormatException("The zip archive has no data.pkl: it is not a torch.save file.");
                }
            }
        }
        catch (InvalidDataException ex)
        {
            throw new WeightsFormatException("Not a PyTorch file: torch.save writes a zip archive (PyTorch 1.6 or newer; the legacy format is not read).", ex);
        }

        file.Position = 0;
        Hashtable state;
        try
        {
            state = PyTorchUnpickler.UnpickleStateDict(file, leaveOpen: true);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not WeightsFormatException)
        {
            throw new WeightsFormatException($"The PyTorch file could not be read as a state_dict: {ex.Message}", ex);
        }

        var result = new List<NamedTensor>();
        using var scope = NewDisposeScope();
        foreach (DictionaryEntry entry in state)
        {
            if (entry.Value is not Tensor tensor)
            {
                throw new WeightsFormatException($"'{entry.Key}' is not a tensor: the file must hold a state_dict (torch.save(net.state_dict(), path)).");
            }

            if (!is_floating_point(tensor))
            {
                throw new WeightsFormatException($"'{entry.Key}' has dtype {tensor.dtype}; floating-point weights are needed.");
            }

            result.Add(new NamedTensor((string)entry.Key, tensor.shape, tensor.to_type(ScalarType.Float32).contiguous().data<float>().ToArray()));
        }

        // The unpickler's Hashtable loses the file's order: restore module order (0.0.weight, 0.0.bias, 0.2.weight, … 7.4.bias).
        return result.OrderBy(t => t.Name, ModuleOrder.Instance).ToArray();
    }

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
