using System.Buffers.Binary;
using System.Text;

namespace Nin.Model.Onnx;

/// <summary>
/// A minimal Protocol Buffers encoder (wire types 0 and 2), enough to write an ONNX <c>ModelProto</c>
/// without generated code: each message is written into its own buffer and embedded length-prefixed.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream buffer = new();

    public long Length => buffer.Length;

    public ProtoWriter Int(int field, long value)
    {
        Tag(field, 0);
        Varint(unchecked((ulong)value));
        return this;
    }

    public ProtoWriter Ints(int field, IEnumerable<long> values)
    {
        foreach (var v in values)
        {
            Int(field, v);
        }

        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        buffer.Write(bytes);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        buffer.Write(value);
        return this;
    }

    public ProtoWriter Message(int field, ProtoWriter message)
    {
        Tag(field, 2);
        Varint((ulong)message.buffer.Length);
        message.buffer.Position = 0;
        message.buffer.CopyTo(buffer);
        return this;
    }

    public byte[] ToArray() => buffer.ToArray();

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    private void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        buffer.WriteByte((byte)value);
    }
}
