using System.Buffers.Binary;
using System.Text;

namespace Nin.Model.Interop;

/// <summary>A storage a pickled tensor refers to: the zip entry <c>data/{Key}</c> holding <c>Elements</c> values of <c>Dtype</c>.</summary>
internal sealed record PickledStorage(string Key, string TypeName, string? Dtype, long Elements);

/// <summary>A tensor as <c>torch._utils._rebuild_tensor_v2</c> would rebuild it: a view of a storage.</summary>
internal sealed record PickledTensor(PickledStorage Storage, long Offset, long[] Shape, long[] Stride);

/// <summary>
/// Reads the pickle of a <c>torch.save(state_dict)</c> file without running anything it names: a small stack machine
/// that knows the opcodes pickle protocols 2–5 use for dicts, tuples, lists, strings and numbers, and exactly the
/// callables a state_dict is made of (<c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c>,
/// <c>_rebuild_parameter</c>, the <c>torch.*Storage</c> types in persistent ids). Any other global is refused by name.
/// The result describes tensors (storage, offset, shape, stride); no value is read and nothing is allocated for them here.
/// </summary>
internal static class StateDictPickle
{
    private static readonly object Mark = new();

    private static readonly Dictionary<string, string?> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = "F32",
        ["DoubleStorage"] = "F64",
        ["HalfStorage"] = "F16",
        ["BFloat16Storage"] = "BF16",
        ["LongStorage"] = null,
        ["IntStorage"] = null,
        ["ShortStorage"] = null,
        ["CharStorage"] = null,
        ["ByteStorage"] = null,
        ["BoolStorage"] = null,
        ["ComplexFloatStorage"] = null,
        ["ComplexDoubleStorage"] = null,
    };

    /// <summary>The top-level dictionary's items in file order (keys as pickled: a string, or an integer, or …).</summary>
    public static IReadOnlyList<(object? Key, object? Value)> Read(ReadOnlySpan<byte> data, CancellationToken cancellationToken = default)
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        var pos = 0;
        var steps = 0;

        object? Pop()
        {
            if (stack.Count == 0)
            {
                throw Malformed("stack underflow");
            }

            var v = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return v;
        }

        object? Top() => stack.Count > 0 ? stack[^1] : throw Malformed("stack underflow");

        List<object?> PopMark()
        {
            var m = stack.FindLastIndex(o => ReferenceEquals(o, Mark));
            if (m < 0)
            {
                throw Malformed("no mark");
            }

            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }

        while (true)
        {
            if ((++steps & 1023) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            if (pos >= data.Length)
            {
                throw Malformed("it ends without STOP");
            }

            var op = data[pos++];
            switch (op)
            {
                case 0x80: // PROTO
                    Take(data, ref pos, 1);
                    break;
                case 0x95: // FRAME
                    Take(data, ref pos, 8);
                    break;
                case (byte)'.': // STOP
                    return Result(Pop());
                case (byte)'(': // MARK
                    stack.Add(Mark);
                    break;
                case (byte)'}': // EMPTY_DICT
                    stack.Add(new PyDict());
                    break;
                case (byte)']': // EMPTY_LIST
                    stack.Add(new List<object?>());
                    break;
                case (byte)')': // EMPTY_TUPLE
                    stack.Add(Array.Empty<object?>());
                    break;
                case (byte)'t': // TUPLE
                    stack.Add(PopMark().ToArray());
                    break;
                case 0x85: // TUPLE1
                    stack.Add(new[] { Pop() });
                    break;
                case 0x86: // TUPLE2
                {
                    var b = Pop();
                    var a = Pop();
                    stack.Add(new[] { a, b });
                    break;
                }

                case 0x87: // TUPLE3
                {
                    var c = Pop();
                    var b = Pop();
                    var a = Pop();
                    stack.Add(new[] { a, b, c });
                    break;
                }

                case (byte)'l': // LIST
                    stack.Add(PopMark());
                    break;
                case (byte)'d': // DICT
                {
                    var items = PopMark();
                    var dict = new PyDict();
                    SetItems(dict, items);
                    stack.Add(dict);
                    break;
                }

                case (byte)'s': // SETITEM
                {
                    var value = Pop();
                    var key = Pop();
                    AsDict(Top()).Items.Add((key, value));
                    break;
                }

                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    SetItems(AsDict(Top()), items);
                    break;
                }

                case (byte)'a': // APPEND
                {
                    var value = Pop();
                    AsList(Top()).Add(value);
                    break;
                }

                case (byte)'e': // APPENDS
                {
                    var items = PopMark();
                    AsList(Top()).AddRange(items);
                    break;
                }

                case (byte)'q': // BINPUT
                    memo[Take(data, ref pos, 1)[0]] = Top();
                    break;
                case (byte)'r': // LONG_BINPUT
                    memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4))] = Top();
                    break;
                case 0x94: // MEMOIZE
                    memo[memo.Count] = Top();
                    break;
                case (byte)'p': // PUT
                    memo[ParseLong(Line(data, ref pos))] = Top();
                    break;
                case (byte)'h': // BINGET
                    stack.Add(Get(memo, Take(data, ref pos, 1)[0]));
                    break;
                case (byte)'j': // LONG_BINGET
                    stack.Add(Get(memo, BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4))));
                    break;
                case (byte)'g': // GET
                    stack.Add(Get(memo, ParseLong(Line(data, ref pos))));
                    break;
                case (byte)'J': // BININT
                    stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(data, ref pos, 4)));
                    break;
                case (byte)'K': // BININT1
                    stack.Add((long)Take(data, ref pos, 1)[0]);
                    break;
                case (byte)'M': // BININT2
                    stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(data, ref pos, 2)));
                    break;
                case 0x8a: // LONG1
                    stack.Add(LittleEndianLong(Take(data, ref pos, Take(data, ref pos, 1)[0])));
                    break;
                case 0x8b: // LONG4
                {
                    var n = BinaryPrimitives.ReadInt32LittleEndian(Take(data, ref pos, 4));
                    stack.Add(LittleEndianLong(Take(data, ref pos, n)));
                    break;
                }

                case (byte)'I': // INT
                {
                    var line = Line(data, ref pos);
                    stack.Add(line switch { "00" => false, "01" => true, _ => ParseLong(line) });
                    break;
                }

                case (byte)'L': // LONG
                    stack.Add(ParseLong(Line(data, ref pos).TrimEnd('L')));
                    break;
                case (byte)'G': // BINFLOAT
                    stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(data, ref pos, 8)));
                    break;
                case (byte)'N': // NONE
                    stack.Add(null);
                    break;
                case 0x88: // NEWTRUE
                    stack.Add(true);
                    break;
                case 0x89: // NEWFALSE
                    stack.Add(false);
                    break;
                case (byte)'X': // BINUNICODE
                    stack.Add(Utf8(Take(data, ref pos, Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4))))));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    stack.Add(Utf8(Take(data, ref pos, Take(data, ref pos, 1)[0])));
                    break;
                case 0x8d: // BINUNICODE8
                    stack.Add(Utf8(Take(data, ref pos, Length(BinaryPrimitives.ReadUInt64LittleEndian(Take(data, ref pos, 8))))));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    stack.Add(Encoding.Latin1.GetString(Take(data, ref pos, Take(data, ref pos, 1)[0])));
                    break;
                case (byte)'T': // BINSTRING
                    stack.Add(Encoding.Latin1.GetString(Take(data, ref pos, Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4))))));
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    stack.Add(Take(data, ref pos, Take(data, ref pos, 1)[0]).ToArray());
                    break;
                case (byte)'B': // BINBYTES
                    stack.Add(Take(data, ref pos, Length(BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4)))).ToArray());
                    break;
                case (byte)'c': // GLOBAL
                {
                    var module = Line(data, ref pos);
                    stack.Add(new PyGlobal(module, Line(data, ref pos)));
                    break;
                }

                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Malformed("STACK_GLOBAL without a name");
                    var module = Pop() as string ?? throw Malformed("STACK_GLOBAL without a module");
                    stack.Add(new PyGlobal(module, name));
                    break;
                }

                case (byte)'R': // REDUCE
                {
                    var args = Pop() as object?[] ?? throw Malformed("REDUCE without an argument tuple");
                    stack.Add(Call(Pop(), args));
                    break;
                }

                case (byte)'b': // BUILD: the state of an OrderedDict (its _metadata) or a tensor is not needed
                {
                    Pop();
                    if (Top() is not (PyDict or PickledTensor))
                    {
                        throw Malformed("BUILD on an object a state_dict does not hold");
                    }

                    break;
                }

                case (byte)'Q': // BINPERSID
                    stack.Add(Storage(Pop()));
                    break;
                case (byte)'0': // POP
                    Pop();
                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    stack.Add(Top());
                    break;
                default:
                    throw new WeightsFormatException($"The PyTorch file's pickle uses opcode 0x{op:x2}, which a state_dict does not need; nothing in it was run.");
            }
        }
    }

    private static IReadOnlyList<(object? Key, object? Value)> Result(object? top) => top is PyDict dict
        ? dict.Items
        : throw new WeightsFormatException("The PyTorch file holds no dictionary: the file must hold a state_dict (torch.save(net.state_dict(), path)).");

    private static object Call(object? callable, object?[] args)
    {
        if (callable is not PyGlobal g)
        {
            throw Malformed("REDUCE on something that is not a callable");
        }

        switch (g.Module, g.Name)
        {
            case ("collections", "OrderedDict") when args.Length == 0:
                return new PyDict();
            case ("collections", "OrderedDict") when args is [IEnumerable<object?> pairs and (List<object?> or object?[])]:
            {
                var dict = new PyDict();
                foreach (var pair in pairs)
                {
                    dict.Items.Add(pair is object?[] { Length: 2 } kv ? (kv[0], kv[1]) : throw Malformed("OrderedDict of something other than pairs"));
                }

                return dict;
            }

            case ("torch._utils", "_rebuild_tensor_v2") when args.Length is 6 or 7:
            case ("torch._utils", "_rebuild_tensor") when args.Length == 4:
            {
                var storage = args[0] as PickledStorage ?? throw Malformed("a tensor without a storage");
                return new PickledTensor(storage, AsLong(args[1]), Longs(args[2]), Longs(args[3]));
            }

            case ("torch._utils", "_rebuild_parameter" or "_rebuild_parameter_with_state") when args.Length is 3 or 4 && args[0] is PickledTensor tensor:
                return tensor;
            default:
                throw new WeightsFormatException(
                    $"The PyTorch file calls '{StateDictSchema.Printable(g.Module)}.{StateDictSchema.Printable(g.Name)}', which a state_dict of tensors does not contain; nothing in it was run.");
        }
    }

    private static PickledStorage Storage(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] is not "storage" || t[1] is not PyGlobal type || t[2] is not string key)
        {
            throw Malformed("a persistent id that is not a storage");
        }

        if (type.Module != "torch" || !StorageTypes.TryGetValue(type.Name, out var dtype))
        {
            throw new WeightsFormatException($"The PyTorch file refers to storage type '{StateDictSchema.Printable(type.Module)}.{StateDictSchema.Printable(type.Name)}', which is not read.");
        }

        var elements = AsLong(t[4]);
        return elements < 0 ? throw Malformed("a storage with a negative size") : new PickledStorage(key, type.Name, dtype, elements);
    }

    private static void SetItems(PyDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0)
        {
            throw Malformed("SETITEMS with an odd number of items");
        }

        for (var i = 0; i < items.Count; i += 2)
        {
            dict.Items.Add((items[i], items[i + 1]));
        }
    }

    private static PyDict AsDict(object? o) => o as PyDict ?? throw Malformed("SETITEM on something that is not a dict");

    private static List<object?> AsList(object? o) => o as List<object?> ?? throw Malformed("APPEND on something that is not a list");

    private static long AsLong(object? o) => o is long l ? l : throw Malformed("a number was expected");

    private static long[] Longs(object? o) => o is object?[] t && t.Length <= 16 ? t.Select(AsLong).ToArray() : throw Malformed("a size or stride tuple was expected");

    private static object? Get(Dictionary<long, object?> memo, long index) => memo.TryGetValue(index, out var v) ? v : throw Malformed("a memo entry that was never stored");

    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> data, ref int pos, int count)
    {
        if (count < 0 || count > data.Length - pos)
        {
            throw Malformed("it is truncated");
        }

        var slice = data.Slice(pos, count);
        pos += count;
        return slice;
    }

    private static int Length(ulong n) => n <= int.MaxValue ? (int)n : throw Malformed("it is truncated");

    private static string Line(ReadOnlySpan<byte> data, ref int pos)
    {
        var end = data[pos..].IndexOf((byte)'\n');
        if (end < 0 || end > 256)
        {
            throw Malformed("a text argument is unterminated or too long");
        }

        var text = Encoding.ASCII.GetString(data.Slice(pos, end));
        pos += end + 1;
        return text;
    }

    private static long ParseLong(string text) =>
        long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : throw Malformed("a number is out of range");

    private static long LittleEndianLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return 0;
        }

        if (bytes.Length > 8)
        {
            throw Malformed("a number is out of range");
        }

        Span<byte> full = stackalloc byte[8];
        full.Fill((bytes[^1] & 0x80) != 0 ? (byte)0xFF : (byte)0);
        bytes.CopyTo(full);
        return BinaryPrimitives.ReadInt64LittleEndian(full);
    }

    private static string Utf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Malformed("a string is not UTF-8");
        }
    }

    private static WeightsFormatException Malformed(string what) => new($"The PyTorch file's pickle is not a state_dict ({what}).");

    private sealed record PyGlobal(string Module, string Name);

    private sealed class PyDict
    {
        public List<(object? Key, object? Value)> Items { get; } = [];
    }
}
