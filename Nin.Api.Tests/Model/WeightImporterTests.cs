using Nin.Api.Tests.Hostile;
using Nin.Model.Interop;
using Nin.Model.Network;

namespace Nin.Api.Tests.Model;

/// <summary>
/// The importers against files built to cost more than they hold: what they allocate is measured on this thread
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>) and must stay within what the architecture's parameters take.
/// </summary>
[UnitTests]
public sealed class WeightImporterTests
{
    private static readonly StateDictSchema Schema = TorchFiles.D2l();

    /// <summary>The most a legitimate import may allocate here: the float32 result, one storage as float64, and slack.</summary>
    private static readonly long Budget = (Schema.Elements * 4) + Schema.MaxDataBytes + (4 << 20);

    private static (T? Result, Exception? Error, long Allocated) Measure<T>(Func<T> read)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            var result = read();
            return (result, null, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        catch (Exception ex)
        {
            return (default, ex, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    private static PickledView[] Views(Func<int, (string Key, long[] Shape), PickledView> make) =>
        TorchFiles.Parameters().Select((p, i) => make(i, p)).ToArray();

    private static void AssertClean(string message)
    {
        Assert.DoesNotContain("0x", message, StringComparison.Ordinal);
        Assert.DoesNotContain(" at ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("/tmp", message, StringComparison.Ordinal);
        Assert.DoesNotContain("/work", message, StringComparison.Ordinal);
        Assert.DoesNotContain("libtorch", message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Exception", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_well_formed_pt_with_a_storage_per_tensor_reads_back_every_value()
    {
        var views = Views((i, p) => new PickledView(p.Key, $"{i}", TorchFiles.Elements(p.Shape), 0, p.Shape, TorchFiles.Contiguous(p.Shape)));
        var storages = views.ToDictionary(v => v.Storage, v => TorchFiles.Floats(v.StorageElements));
        var file = TorchFiles.Pt(TorchFiles.StateDictPickle(views), storages, deflateStorages: true);
        var (tensors, error, allocated) = Measure(() => PyTorchWeights.Read(new MemoryStream(file), Schema));
        Assert.Null(error);
        Assert.Equal(TorchFiles.Parameters().Select(p => p.Key), tensors!.Select(t => t.Name));
        Assert.Equal(2e-4f, tensors![0].Values[2]);
        Assert.True(allocated < Budget, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void Tensors_sharing_one_storage_inflate_it_once_and_strided_views_read_the_right_elements()
    {
        var largest = TorchFiles.Parameters().Max(p => TorchFiles.Elements(p.Shape)) + 1;
        // Every tensor a view of storage 0; the first is transposed (strides reversed), the rest start at offset 1.
        var views = Views((i, p) => i == 0
            ? new PickledView(p.Key, "0", largest, 0, p.Shape, [1, 96, 96 * 1, 96 * 1 * 11])
            : new PickledView(p.Key, "0", largest, 1, p.Shape, TorchFiles.Contiguous(p.Shape)));
        var file = TorchFiles.Pt(TorchFiles.StateDictPickle(views), new Dictionary<string, byte[]> { ["0"] = TorchFiles.Floats(largest) }, deflateStorages: true);
        var (tensors, error, allocated) = Measure(() => PyTorchWeights.Read(new MemoryStream(file), Schema));
        Assert.Null(error);
        Assert.True(allocated < Budget, $"allocated {allocated:N0} bytes");
        Assert.Equal(1056 * 1e-4f, tensors![0].Values[1]); // [0, 0, 0, 1]: one step along the last axis is 96·11 elements
        Assert.Equal(2e-4f, tensors[1].Values[1]);
    }

    [Fact]
    public void A_storage_larger_than_the_architecture_is_refused_before_it_is_inflated()
    {
        // 16 references to one deflated storage of 64 M floats (256 MB inflated; a few hundred KB in the file).
        const long huge = 64L * 1024 * 1024;
        var views = Views((_, p) => new PickledView(p.Key, "0", huge, 0, p.Shape, TorchFiles.Contiguous(p.Shape)));
        var file = TorchFiles.Pt(TorchFiles.StateDictPickle(views), new Dictionary<string, byte[]> { ["0"] = new byte[huge * 4] }, deflateStorages: true);
        Assert.True(file.Length < 1 << 20);
        var (_, error, allocated) = Measure(() => PyTorchWeights.Read(new MemoryStream(file), Schema));
        var refused = Assert.IsType<WeightsFormatException>(error);
        Assert.Contains("at most", refused.Message, StringComparison.Ordinal);
        Assert.True(allocated < 8 << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void More_keys_than_the_architecture_has_are_refused_before_any_storage_is_read()
    {
        var views = Enumerable.Range(0, 500).Select(i => new PickledView($"t{i}", "0", 1 << 20, 0, [1 << 20], [1])).ToArray();
        var file = TorchFiles.Pt(TorchFiles.StateDictPickle(views), new Dictionary<string, byte[]> { ["0"] = new byte[4 << 20] }, deflateStorages: true);
        var (_, error, allocated) = Measure(() => PyTorchWeights.Read(new MemoryStream(file), Schema));
        Assert.IsType<WeightsFormatException>(error);
        Assert.True(allocated < 8 << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_view_past_its_storage_is_a_clean_message_without_native_text()
    {
        var views = Views((i, p) => new PickledView(p.Key, $"{i}", TorchFiles.Elements(p.Shape), i == 3 ? 1L << 40 : 0, p.Shape, TorchFiles.Contiguous(p.Shape)));
        var storages = views.ToDictionary(v => v.Storage, v => TorchFiles.Floats(v.StorageElements));
        var error = Assert.Throws<WeightsFormatException>(() => PyTorchWeights.Read(new MemoryStream(TorchFiles.Pt(TorchFiles.StateDictPickle(views), storages)), Schema));
        Assert.Contains("past the end of its storage", error.Message, StringComparison.Ordinal);
        AssertClean(error.Message);
    }

    [Fact]
    public void An_integer_key_is_a_format_error_naming_it()
    {
        var views = Views((i, p) => new PickledView(i == 0 ? 7L : p.Key, $"{i}", TorchFiles.Elements(p.Shape), 0, p.Shape, TorchFiles.Contiguous(p.Shape)));
        var storages = views.ToDictionary(v => v.Storage, v => TorchFiles.Floats(v.StorageElements));
        var error = Assert.Throws<WeightsFormatException>(() => PyTorchWeights.Read(new MemoryStream(TorchFiles.Pt(TorchFiles.StateDictPickle(views), storages)), Schema));
        Assert.Contains("the integer 7", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pickle_that_calls_a_function_is_refused_by_name_and_nothing_runs()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"nin-pwned-{Guid.NewGuid():N}");
        var file = TorchFiles.Pt(TorchFiles.CallPickle("posix", "system", $"touch {marker}"), new Dictionary<string, byte[]>());
        var error = Assert.Throws<WeightsFormatException>(() => PyTorchWeights.Read(new MemoryStream(file), Schema));
        Assert.Contains("posix.system", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void Integer_storages_are_refused_as_weights()
    {
        var views = Views((i, p) => new PickledView(p.Key, $"{i}", TorchFiles.Elements(p.Shape), 0, p.Shape, TorchFiles.Contiguous(p.Shape), i == 2 ? "LongStorage" : "FloatStorage"));
        var storages = views.ToDictionary(v => v.Storage, v => TorchFiles.Floats(v.StorageElements * (v.StorageType == "LongStorage" ? 2 : 1)));
        var error = Assert.Throws<WeightsFormatException>(() => PyTorchWeights.Read(new MemoryStream(TorchFiles.Pt(TorchFiles.StateDictPickle(views), storages)), Schema));
        Assert.Contains("floating-point", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Safetensors_entries_on_one_byte_range_are_refused_before_values_are_read()
    {
        var parameters = TorchFiles.Parameters();
        var largest = parameters.Max(p => TorchFiles.Elements(p.Shape)) * 4;

        // 100 entries on one range: more tensors than the architecture has.
        var many = TorchFiles.Safetensors(Enumerable.Range(0, 100).Select(i => ($"t{i}", "F32", new long[] { largest / 4 }, 0L, largest)), largest);
        var (_, error, allocated) = Measure(() => Safetensors.Read(many, Schema));
        Assert.Contains($"this architecture has {Schema.TensorCount}", Assert.IsType<WeightsFormatException>(error).Message, StringComparison.Ordinal);
        Assert.True(allocated < 2 << 20, $"allocated {allocated:N0} bytes");

        // The right names and shapes, every range starting at 0.
        var shared = TorchFiles.Safetensors(parameters.Select(p => (p.Key, "F32", p.Shape, 0L, TorchFiles.Elements(p.Shape) * 4)), largest);
        (_, error, allocated) = Measure(() => Safetensors.Read(shared, Schema));
        Assert.Contains("share bytes", Assert.IsType<WeightsFormatException>(error).Message, StringComparison.Ordinal);
        Assert.True(allocated < 2 << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_safetensors_shape_that_does_not_fit_is_refused_before_its_bytes_are_read()
    {
        // A tensor declared as 2^31 floats (8 GiB): the name is right, the shape is not.
        var entries = TorchFiles.Parameters().Select((p, i) => i == 0 ? (p.Key, "F32", new long[] { 1L << 31 }, 0L, 1L << 33) : (p.Key, "F32", p.Shape, 0L, 0L));
        var file = TorchFiles.Safetensors(entries, 64);
        var (_, error, allocated) = Measure(() => Safetensors.Read(file, Schema));
        Assert.IsType<WeightsFormatException>(error);
        Assert.True(allocated < 2 << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_safetensors_export_in_memory_is_the_streamed_file_in_one_array_of_its_size()
    {
        var tensors = TorchFiles.Parameters().Select((p, n) =>
        {
            var values = new float[TorchFiles.Elements(p.Shape)];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (n * 0.5f) + (i * 1e-6f);
            }

            return new NamedTensor(p.Key, p.Shape, values);
        }).ToArray();
        var metadata = new Dictionary<string, string> { ["classes"] = "[\"a\",\"b\"]", ["name"] = "x" };
        using var streamed = new MemoryStream();
        Safetensors.Write(tensors, streamed, metadata);

        var (file, error, allocated) = Measure(() => Safetensors.ToBytes(tensors, metadata));
        Assert.Null(error);
        Assert.Equal(streamed.ToArray(), file);
        Assert.True(allocated < file!.Length + (256 << 10), $"allocated {allocated:N0} bytes for a {file.Length:N0}-byte file");
        var back = Safetensors.Read(file, Schema);
        Assert.Equal(tensors.Select(t => t.Values), back.Select(t => t.Values));
    }
}
