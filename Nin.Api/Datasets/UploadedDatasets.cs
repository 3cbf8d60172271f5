using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Archives;
using Nin.Model.Data;
using Nin.Model.Imaging;

namespace Nin.Api.Datasets;

/// <summary>An uploaded dataset as stored in <c>dataset.json</c> and returned by the API.</summary>
public sealed record UploadedDataset(
    string Id,
    string Name,
    IReadOnlyList<UploadedClass> Classes,
    int Train,
    int Test,
    int Channels,
    int Size,
    IReadOnlyList<SkippedEntry> Skipped,
    DateTimeOffset CreatedAt,
    string Foreground = Foregrounds.None);

/// <summary>A class of an uploaded dataset: its images, and how many of them went to each split.</summary>
public sealed record UploadedClass(string Name, int Images, int Train = 0, int Test = 0);

public sealed record SkippedEntry(string Entry, string Reason);

/// <summary>An upload refused as a whole, with the status and a message fit for the client.</summary>
public sealed class DatasetUploadException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>
/// Datasets uploaded as zips of one folder per class (optionally under <c>train/</c> and <c>test/</c>), decoded once
/// into planar bytes of one size and stored compactly under <c>{data}/uploads/{id}/</c>: <c>dataset.json</c>,
/// <c>{split}-labels.bin</c> (one byte per image) and <c>{split}-images.bin</c> (N×C×S×S bytes).
/// Nothing is extracted: entries are checked by their declared sizes and read into memory one at a time;
/// the result is written to a fresh folder of the service's own and moved into place only when complete.
/// </summary>
public sealed partial class UploadedDatasets(IOptions<NinOptions> nin, IOptions<DatasetUploadOptions> limits, ILogger<UploadedDatasets> logger)
{
    public const string IdPrefix = "u-";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    private readonly UploadQuota quota = new(() => Path.Combine(nin.Value.ResolvedDataDirectory, "uploads"));

    public DatasetUploadOptions Limits => limits.Value;

    public string Root => Path.Combine(nin.Value.ResolvedDataDirectory, "uploads");

    [GeneratedRegex(@"\Au-[0-9a-f]{16}\z")]
    private static partial Regex IdPattern();

    public static bool IsUploadId(string name) => IdPattern().IsMatch(name);

    public IReadOnlyList<UploadedDataset> List()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        return Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => n is not null && IsUploadId(n))
            .Select(n => Get(n!))
            .OfType<UploadedDataset>()
            .OrderBy(d => d.CreatedAt)
            .ToArray();
    }

    public UploadedDataset? Get(string id)
    {
        if (!IsUploadId(id))
        {
            return null;
        }

        var file = Path.Combine(Root, id, "dataset.json");
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<UploadedDataset>(File.ReadAllBytes(file), Json) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            logger.LogWarning("Uploaded dataset {Id} is unreadable: {Reason}", id, ex.Message);
            return null;
        }
    }

    public bool Delete(string id)
    {
        if (Get(id) is null)
        {
            return false;
        }

        var trash = Path.Combine(Root, $".del-{id}-{Guid.NewGuid():N}");
        Directory.Move(Path.Combine(Root, id), trash);
        Directory.Delete(trash, recursive: true);
        return true;
    }

    public DatasetSplit Load(string id, int? maxTrain, int? maxTest)
    {
        var info = Get(id) ?? throw new ArgumentException($"Unknown dataset '{id}'.");
        var classes = info.Classes.Select(c => c.Name).ToArray();
        ImageDataset Read(string split, int? max)
        {
            if (max == 0)
            {
                // Evaluation asks for no training images: the files are not read at all.
                return new ImageDataset(info.Name, classes, info.Channels, info.Size, info.Size, [], []) { Foreground = info.Foreground };
            }

            var dir = Path.Combine(Root, id);
            var labels = File.ReadAllBytes(Path.Combine(dir, $"{split}-labels.bin"));
            var pixels = File.ReadAllBytes(Path.Combine(dir, $"{split}-images.bin"));
            return new ImageDataset(info.Name, classes, info.Channels, info.Size, info.Size, pixels, labels) { Foreground = info.Foreground }.Take(max);
        }

        return new DatasetSplit(Read("train", maxTrain), Read("test", maxTest));
    }

    /// <summary>Checks, decodes and stores a zip; throws <see cref="DatasetUploadException"/> for a refused upload.</summary>
    public UploadedDataset Import(Stream zip, string name, int size, string channelsMode, CancellationToken cancellationToken)
    {
        var l = limits.Value;
        ZipIndex archive;
        try
        {
            archive = ZipIndex.Read(zip, l.MaxEntries, cancellationToken);
        }
        catch (ZipLimitException ex)
        {
            throw new DatasetUploadException(StatusCodes.Status413PayloadTooLarge, ex.Message);
        }
        catch (ZipFormatException ex)
        {
            throw new DatasetUploadException(StatusCodes.Status400BadRequest, $"The file is not a readable zip archive: {ex.Message}");
        }

        var entries = CheckEntries(archive.Entries, l, cancellationToken);
        var files = Layout(entries, cancellationToken, out var skipped, out var splitMode, out var classFolders);

        // The stored size is known from the entry count before anything is decoded: every image at size² bytes per channel.
        var fixedChannels = channelsMode switch { "1" or "grey" or "gray" => 1, "3" or "rgb" => 3, _ => 0 };
        using var reservation = quota.Reserve(StoredBytes(files.Count, fixedChannels == 0 ? 1 : fixedChannels, size), l);

        // Decode as RGB first; the stored channels are chosen after seeing every image.
        var decoded = new List<(string Class, string? Split, byte[] Rgb, string Entry)>();
        long pixels = 0;
        foreach (var (entry, cls, split) in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = ReadEntry(archive, entry, cancellationToken);
            var format = ImageDecoder.DetectFormat(data);
            if (format is null)
            {
                skipped.Add(new SkippedEntry(entry.Name, "not an image (PNG, JPEG, WebP, BMP or GIF)"));
                continue;
            }

            // The total is decided from each header before that image is decoded.
            if (ImageHeader.TryReadSize(data, format, out var w, out var h) && w > 0 && h > 0 && w * h <= l.MaxImagePixels)
            {
                pixels += w * h;
                if (pixels > l.MaxTotalPixels)
                {
                    throw new DatasetUploadException(StatusCodes.Status413PayloadTooLarge,
                        $"The images declare more than {l.MaxTotalPixels:N0} pixels together (DatasetUploads:MaxTotalPixels); '{ZipIndex.Printable(entry.Name)}' passes it.");
                }
            }

            try
            {
                var image = ImageDecoder.Decode(data, 3, size, size, lightOnDark: false, InvertMode.False, l.MaxImagePixels);
                decoded.Add((cls, split, image.Pixels, entry.Name));
            }
            catch (ImageDecodeException ex)
            {
                skipped.Add(new SkippedEntry(entry.Name, ex.Message));
            }
        }

        cancellationToken.ThrowIfCancellationRequested(); // cancelled after the last entry: nothing is stored either
        var classNames = classFolders.Order(StringComparer.Ordinal).ToArray();
        if (classNames.Length < 2)
        {
            throw new DatasetUploadException(400, $"A dataset needs at least 2 classes (one folder per class); found {classNames.Length}.");
        }

        var empty = classNames.Where(c => !decoded.Any(d => d.Class == c && d.Split != "test")).ToArray();
        if (empty.Length > 0)
        {
            throw new DatasetUploadException(400, $"These classes have no usable training images: {string.Join(", ", empty)}.");
        }

        if (classNames.Length > 256)
        {
            throw new DatasetUploadException(400, "A dataset may have at most 256 classes.");
        }

        // A zip with train/ but no test/ pictures is split like one without folders for the splits.
        if (splitMode && !decoded.Any(d => d.Split == "test"))
        {
            splitMode = false;
        }

        // Every class needs a picture on each side: one to learn from and one to be tested on.
        var missing = splitMode
            ? classNames.Where(c => !decoded.Any(d => d.Class == c && d.Split == "test")).ToArray()
            : classNames.Where(c => decoded.Count(d => d.Class == c) < 2).ToArray();
        if (missing.Length > 0)
        {
            throw new DatasetUploadException(400, splitMode
                ? $"These classes have no usable test images under test/: {string.Join(", ", missing)}. Add some, or leave out test/ to have the service split each class."
                : $"These classes have fewer than 2 usable images, so they cannot be both trained on and tested: {string.Join(", ", missing.Select(c => $"{c} ({decoded.Count(d => d.Class == c)})"))}.");
        }

        // light-on-dark, dark-on-light or none, from the borders of the pictures as stored.
        var foreground = Foregrounds.Measure(decoded.Select(d => Foregrounds.BorderMean(d.Rgb, 3, size)));

        var channels = channelsMode switch
        {
            "1" or "grey" or "gray" => 1,
            "3" or "rgb" => 3,
            _ => decoded.Any(d => IsColour(d.Rgb)) ? 3 : 1,
        };

        var index = classNames.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (byte)p.i);
        var train = new List<(byte Label, byte[] Pixels)>();
        var test = new List<(byte Label, byte[] Pixels)>();
        foreach (var group in decoded.GroupBy(d => d.Class))
        {
            var items = group.ToList();
            if (splitMode)
            {
                foreach (var d in items)
                {
                    (d.Split == "test" ? test : train).Add((index[d.Class], ToChannels(d.Rgb, channels)));
                }
            }
            else
            {
                // Seeded by the class name: the same zip always splits the same way; 1 in 6 goes to test.
                var random = new Random(BitConverter.ToInt32(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(group.Key)), 0));
                var order = items.OrderBy(d => d.Entry, StringComparer.Ordinal).ToArray();
                random.Shuffle(order);
                // A class of 2–5 images still gives its last one to test.
                for (var i = 0; i < order.Length; i++)
                {
                    var toTest = i % 6 == 5 || (order.Length < 6 && i == order.Length - 1);
                    (toTest ? test : train).Add((index[group.Key], ToChannels(order[i].Rgb, channels)));
                }
            }
        }

        // Interleave classes in a seeded order so Take(n) keeps every class.
        new Random(17).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(train));
        new Random(18).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(test));
        var id = IdPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var result = new UploadedDataset(
            id,
            name,
            classNames.Select(c => new UploadedClass(c, decoded.Count(d => d.Class == c), train.Count(t => t.Label == index[c]), test.Count(t => t.Label == index[c]))).ToArray(),
            train.Count,
            test.Count,
            channels,
            size,
            skipped,
            DateTimeOffset.UtcNow,
            foreground);
        cancellationToken.ThrowIfCancellationRequested(); // the last point before anything is written
        reservation.Confirm(StoredBytes(train.Count + test.Count, channels, size));
        Store(result, train, test);
        return result;
    }

    /// <summary>Bytes a dataset of <paramref name="images"/> images takes stored: pixels plus one label byte each.</summary>
    public static long StoredBytes(long images, int channels, int size) => images * ((long)channels * size * size + 1);

    /// <summary>Paths, links, depth and declared sizes of every entry, from the index alone (nothing is inflated).</summary>
    private static List<ZipEntryInfo> CheckEntries(IReadOnlyList<ZipEntryInfo> entries, DatasetUploadOptions l, CancellationToken cancellationToken)
    {
        long total = 0;
        foreach (var entry in entries)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = entry.Name;
            if (path.Contains('\\', StringComparison.Ordinal) || path.StartsWith('/') || path.Contains('\0', StringComparison.Ordinal)
                || (path.Length >= 2 && path[1] == ':' && char.IsAsciiLetter(path[0]))
                || path.Split('/').Any(s => s is ".." or "."))
            {
                throw new DatasetUploadException(400, $"Unsafe entry path '{ZipIndex.Printable(path)}': relative paths with '/' only, no '..', no absolute or drive paths.");
            }

            if (entry.IsSymbolicLink)
            {
                throw new DatasetUploadException(400, $"Entry '{ZipIndex.Printable(path)}' is a symbolic link; links are not accepted.");
            }

            if (entry.Depth > l.MaxPathDepth)
            {
                throw new DatasetUploadException(413, $"Entry '{ZipIndex.Printable(path)}' is {entry.Depth} folders deep; the limit is {l.MaxPathDepth} (DatasetUploads:MaxPathDepth).");
            }

            if (entry.Length > l.MaxEntryBytes)
            {
                throw new DatasetUploadException(413, $"Entry '{ZipIndex.Printable(path)}' declares {entry.Length:N0} bytes; the limit is {l.MaxEntryBytes:N0}.");
            }

            if (entry.Length > 1024 && entry.Length > l.MaxCompressionRatio * Math.Max(1, entry.CompressedLength))
            {
                throw new DatasetUploadException(413, $"Entry '{ZipIndex.Printable(path)}' expands {entry.Length / Math.Max(1, entry.CompressedLength)}-fold; the limit is {l.MaxCompressionRatio}.");
            }

            total += entry.Length;
            if (total > l.MaxUncompressedBytes)
            {
                throw new DatasetUploadException(413, $"The zip declares more than {l.MaxUncompressedBytes:N0} bytes uncompressed.");
            }
        }

        return [.. entries];
    }

    /// <summary>Which files are images of which class (and split); everything else is reported as skipped.</summary>
    private static List<(ZipEntryInfo Entry, string Class, string? Split)> Layout(
        List<ZipEntryInfo> entries, CancellationToken cancellationToken, out List<SkippedEntry> skipped, out bool splitMode, out HashSet<string> classFolders)
    {
        skipped = [];
        var paths = entries.Select(e => (Entry: e, Segments: e.Name.Split('/', StringSplitOptions.RemoveEmptyEntries), IsDir: e.IsDirectory)).ToList();
        var hidden = paths.Where(p => p.Segments.Any(s => s.StartsWith('.') || s == "__MACOSX")).ToList();
        foreach (var h in hidden.Where(h => !h.IsDir))
        {
            skipped.Add(new SkippedEntry(h.Entry.Name, "hidden or system file"));
        }

        paths = paths.Except(hidden).Where(p => p.Segments.Length > 0).ToList();

        // A single folder around everything (zip of a folder) is not a class.
        while (paths.Count > 0 && paths.All(p => p.Segments.Length >= 2 || (p.IsDir && p.Segments.Length >= 1))
            && paths.Select(p => p.Segments[0]).Distinct().Count() == 1
            && paths[0].Segments[0] is not ("train" or "test")
            && paths.Any(p => !p.IsDir && p.Segments.Length >= 3))
        {
            cancellationToken.ThrowIfCancellationRequested();
            paths = paths.Select(p => (p.Entry, p.Segments[1..], p.IsDir)).Where(p => p.Item2.Length > 0).ToList();
        }

        splitMode = paths.Count > 0 && paths.All(p => p.Segments[0] is "train" or "test") && paths.Any(p => p.Segments[0] == "train");
        var depth = splitMode ? 3 : 2;
        classFolders = [];
        var files = new List<(ZipEntryInfo, string, string?)>();
        foreach (var (entry, segments, isDir) in paths)
        {
            if (isDir)
            {
                if (segments.Length == depth - 1)
                {
                    classFolders.Add(segments[depth - 2]);
                }

                continue;
            }

            if (segments.Length != depth)
            {
                skipped.Add(new SkippedEntry(entry.Name, splitMode ? "not inside train/<class>/ or test/<class>/" : "not inside a class folder"));
                continue;
            }

            var cls = segments[depth - 2];
            classFolders.Add(cls);
            files.Add((entry, cls, splitMode ? segments[0] : null));
        }

        return files;
    }

    /// <summary>An entry's bytes (its declared size was checked; one that yields more, less or a wrong CRC is refused).</summary>
    private static byte[] ReadEntry(ZipIndex archive, ZipEntryInfo entry, CancellationToken cancellationToken)
    {
        try
        {
            return archive.ReadAll(entry, cancellationToken);
        }
        catch (ZipFormatException ex)
        {
            throw new DatasetUploadException(400, ex.Message);
        }
    }

    private static bool IsColour(byte[] planar)
    {
        var area = planar.Length / 3;
        for (var i = 0; i < area; i++)
        {
            int r = planar[i], g = planar[area + i], b = planar[(2 * area) + i];
            if (Math.Abs(r - g) > 8 || Math.Abs(g - b) > 8 || Math.Abs(r - b) > 8)
            {
                return true;
            }
        }

        return false;
    }

    private static byte[] ToChannels(byte[] planar, int channels)
    {
        if (channels == 3)
        {
            return planar;
        }

        var area = planar.Length / 3;
        var grey = new byte[area];
        for (var i = 0; i < area; i++)
        {
            grey[i] = (byte)Math.Clamp(Math.Round((0.299 * planar[i]) + (0.587 * planar[area + i]) + (0.114 * planar[(2 * area) + i])), 0, 255);
        }

        return grey;
    }

    private void Store(UploadedDataset dataset, List<(byte Label, byte[] Pixels)> train, List<(byte Label, byte[] Pixels)> test)
    {
        Directory.CreateDirectory(Root);
        var temp = Path.Combine(Root, $".tmp-{dataset.Id}");
        try
        {
            Directory.CreateDirectory(temp);
            foreach (var (split, items) in new[] { ("train", train), ("test", test) })
            {
                File.WriteAllBytes(Path.Combine(temp, $"{split}-labels.bin"), items.Select(i => i.Label).ToArray());
                using var images = File.Create(Path.Combine(temp, $"{split}-images.bin"));
                foreach (var (_, pixels) in items)
                {
                    images.Write(pixels);
                }
            }

            File.WriteAllBytes(Path.Combine(temp, "dataset.json"), JsonSerializer.SerializeToUtf8Bytes(dataset, Json));
            Directory.Move(temp, Path.Combine(Root, dataset.Id));
        }
        catch
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            throw;
        }
    }

}
