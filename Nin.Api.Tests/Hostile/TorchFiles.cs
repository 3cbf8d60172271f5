using System.Buffers.Binary;
using System.Text;
using Nin.Model.Interop;
using Nin.Model.Network;

namespace Nin.Api.Tests.Hostile;

/// <summary>One tensor of a hand-made state_dict pickle: its key (a string or not), and the view of a storage it is.</summary>
internal sealed record PickledView(object Key, string Storage, long StorageElements, long Offset, long[] Shape, long[] Stride, string StorageType = "FloatStorage");

/// <summary>
/// Builds <c>torch.save</c> and safetensors files by hand, for tests that need what PyTorch would never write: tensors
/// sharing one storage, views past a storage's end, integer keys, pickles that call other functions.
/// </summary>
internal static class TorchFiles
{
    public static StateDictSchema D2l(int channels = 1, int classes = 10) => new(NinLayers.D2l(channels, classes));

    /// <summary>d2l's parameters (name, shape) for a NiN of <paramref name="channels"/> and <paramref name="classes"/>.</summary>
    public static (string Key, long[] Shape)[] Parameters(int channels = 1, int classes = 10) =>
        NinLayers.Parameters(NinLayers.D2l(channels, classes)).Select(p => (p.Key, p.Shape)).ToArray();

    public static long Elements(long[] shape) => shape.Aggregate(1L, (a, d) => a * d);

    public static long[] Contiguous(long[] shape)
    {
        var stride = new long[shape.Length];
        long s = 1;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = s;
            s *= shape[d];
        }

        return stride;
    }

    /// <summary>A torch.save zip: <c>archive/data.pkl</c> (stored), the storages (deflated when asked), <c>archive/version</c>.</summary>
    public static byte[] Pt(byte[] pickle, IReadOnlyDictionary<string, byte[]> storages, bool deflateStorages = false)
    {
        var zip = new RawZip().Add("archive/data.pkl", pickle, deflate: false);
        foreach (var (key, data) in storages)
        {
            zip.Add($"archive/data/{key}", data, deflate: deflateStorages);
        }

        return zip.Add("archive/version", "3\n"u8.ToArray(), deflate: false).Build();
    }

    /// <summary>The pickle torch.save writes for an OrderedDict of tensors (protocol 2).</summary>
    public static byte[] StateDictPickle(IEnumerable<PickledView> views)
    {
        var p = new MemoryStream();
        p.Write([0x80, 2]);
        Global(p, "collections", "OrderedDict");
        p.Write([(byte)')', (byte)'R', (byte)'(']);
        foreach (var v in views)
        {
            Value(p, v.Key);
            Global(p, "torch._utils", "_rebuild_tensor_v2");
            p.WriteByte((byte)'(');
            p.WriteByte((byte)'(');
            Value(p, "storage");
            Global(p, "torch", v.StorageType);
            Value(p, v.Storage);
            Value(p, "cpu");
            Value(p, v.StorageElements);
            p.Write([(byte)'t', (byte)'Q']);
            Value(p, v.Offset);
            Tuple(p, v.Shape);
            Tuple(p, v.Stride);
            p.WriteByte(0x89);
            Global(p, "collections", "OrderedDict");
            p.Write([(byte)')', (byte)'R', (byte)'t', (byte)'R']);
        }

        p.Write([(byte)'u', (byte)'.']);
        return p.ToArray();
    }

    /// <summary>A pickle that calls <c>module.name(argument)</c>: what a malicious "weights" file does to run code.</summary>
    public static byte[] CallPickle(string module, string name, string argument)
    {
        var p = new MemoryStream();
        p.Write([0x80, 2]);
        Global(p, module, name);
        Value(p, argument);
        p.Write([0x85, (byte)'R', (byte)'.']);
        return p.ToArray();
    }

    /// <summary>Little-endian float32 bytes of <paramref name="count"/> values (i × 1e-4, so every value differs).</summary>
    public static byte[] Floats(long count)
    {
        var bytes = new byte[count * 4];
        for (var i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), i * 1e-4f);
        }

        return bytes;
    }

    /// <summary>A safetensors file from a header written as given (entries: name → dtype, shape, [begin, end]) and <paramref name="dataLength"/> zero bytes.</summary>
    public static byte[] Safetensors(IEnumerable<(string Name, string Dtype, long[] Shape, long Begin, long End)> entries, long dataLength)
    {
        var json = "{" + string.Join(",", entries.Select(e =>
            $"\"{e.Name}\":{{\"dtype\":\"{e.Dtype}\",\"shape\":[{string.Join(",", e.Shape)}],\"data_offsets\":[{e.Begin},{e.End}]}}")) + "}";
        var header = Encoding.UTF8.GetBytes(json);
        var file = new byte[8 + header.Length + dataLength];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        return file;
    }

    private static void Global(Stream p, string module, string name)
    {
        p.WriteByte((byte)'c');
        p.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void Tuple(Stream p, long[] values)
    {
        p.WriteByte((byte)'(');
        foreach (var v in values)
        {
            Value(p, v);
        }

        p.WriteByte((byte)'t');
    }

    private static void Value(Stream p, object value)
    {
        switch (value)
        {
            case string s:
            {
                var bytes = Encoding.UTF8.GetBytes(s);
                p.WriteByte((byte)'X');
                Span<byte> n = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(n, bytes.Length);
                p.Write(n);
                p.Write(bytes);
                break;
            }

            case long or int:
            {
                var l = Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
                Span<byte> b = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(b, l);
                p.WriteByte(0x8a);
                p.WriteByte(8);
                p.Write(b);
                break;
            }

            default:
                throw new ArgumentException($"Cannot pickle {value.GetType()}.", nameof(value));
        }
    }
}
