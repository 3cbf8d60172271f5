using System.Buffers.Binary;
using System.IO.Compression;
using Nin.Model.Data;

namespace Nin.Api.Tests.Model;

[HostTests]
public sealed class IdxReaderTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("nin-idx-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static byte[] ImagesFile(int magic, int count, int rows, int cols, int pixelBytes)
    {
        var bytes = new byte[16 + pixelBytes];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        for (var i = 16; i < bytes.Length; i++)
        {
            bytes[i] = (byte)i;
        }

        return bytes;
    }

    private static byte[] LabelsFile(int magic, int count, params byte[] labels)
    {
        var bytes = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        labels.CopyTo(bytes, 8);
        return bytes;
    }

    private string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = Path.Combine(root, name);
        if (gzip)
        {
            using var file = File.Create(path);
            using var gz = new GZipStream(file, CompressionLevel.Fastest);
            gz.Write(bytes);
        }
        else
        {
            File.WriteAllBytes(path, bytes);
        }

        return path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_a_valid_pair_raw_or_gzip(bool gzip)
    {
        var images = Write("i", ImagesFile(IdxReader.ImagesMagic, 3, 2, 2, 12), gzip);
        var labels = Write("l", LabelsFile(IdxReader.LabelsMagic, 3, 0, 1, 2), gzip);

        var (read, y) = IdxReader.ReadPair(images, labels, classes: 10);

        Assert.Equal((3, 2, 2), (read.Count, read.Rows, read.Columns));
        Assert.Equal(16, read.Pixels[0]);
        Assert.Equal(new byte[] { 0, 1, 2 }, y);
    }

    [Fact]
    public void Wrong_magic_number_is_named()
    {
        var path = Write("i", ImagesFile(0x00000801, 1, 2, 2, 4));
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(path));
        Assert.Contains("magic number 0x00000801", ex.Message, StringComparison.Ordinal);

        var labels = Write("l", LabelsFile(0x00000803, 1, 0));
        Assert.Throws<InvalidDataException>(() => IdxReader.ReadLabels(labels));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Truncated_file_is_reported(bool gzip)
    {
        var path = Write("i", ImagesFile(IdxReader.ImagesMagic, 10, 28, 28, 100), gzip);
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(path));
        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_header_is_reported()
    {
        var path = Write("i", [0, 0, 8]);
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(path));
        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Label_and_image_counts_must_match()
    {
        var images = Write("i", ImagesFile(IdxReader.ImagesMagic, 3, 2, 2, 12));
        var labels = Write("l", LabelsFile(IdxReader.LabelsMagic, 2, 0, 1));
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadPair(images, labels, 10));
        Assert.Contains("3 images", ex.Message, StringComparison.Ordinal);
        Assert.Contains("2 labels", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Labels_outside_the_classes_are_refused()
    {
        var images = Write("i", ImagesFile(IdxReader.ImagesMagic, 2, 2, 2, 8));
        var labels = Write("l", LabelsFile(IdxReader.LabelsMagic, 2, 0, 12));
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadPair(images, labels, 10));
        Assert.Contains("label 12", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Implausible_header_is_refused_before_allocating()
    {
        var path = Write("i", ImagesFile(IdxReader.ImagesMagic, int.MaxValue, 60000, 60000, 0));
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(path));
        Assert.Contains("implausible", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Shared_fashion_mnist_loads_with_its_class_names()
    {
        var dataDir = TestPaths.Datasets;
        var split = BuiltInDatasets.Load(dataDir, BuiltInDatasets.FashionMnist, maxTrain: 100, maxTest: 50);
        Assert.Equal(100, split.Train.Count);
        Assert.Equal(50, split.Test.Count);
        Assert.Equal((1, 28, 28), (split.Train.Channels, split.Train.Height, split.Train.Width));
        Assert.Equal("Ankle boot", split.Train.ClassNames[9]);
        Assert.All(split.Train.Labels, l => Assert.InRange(l, (byte)0, (byte)9));
    }

    [Fact]
    public void Missing_dataset_names_the_folder_and_files()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => BuiltInDatasets.Load(root, BuiltInDatasets.Mnist));
        Assert.Contains(Path.Combine(root, "mnist"), ex.Message, StringComparison.Ordinal);
        Assert.Contains("train-images-idx3-ubyte.gz", ex.Message, StringComparison.Ordinal);
    }
}
