namespace Nin.Api.Datasets;

/// <summary>
/// Limits and quotas of dataset uploads, bound from the <c>DatasetUploads</c> section. Each is decided before the
/// work it bounds: the entry count from the zip's end record, paths, sizes and overlaps from its index, the stored
/// size from the entry count before any image is decoded, pixels from each image's header before it is decoded.
/// </summary>
public sealed class DatasetUploadOptions
{
    public const string SectionName = "DatasetUploads";

    /// <summary>Largest request (the zip) in bytes.</summary>
    public long MaxUploadBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Most entries (files and folders) in the zip, as its end-of-central-directory record declares them.</summary>
    public int MaxEntries { get; set; } = 20_000;

    /// <summary>Most folder levels in an entry's path (<c>photos/train/cat/1.png</c> has 4).</summary>
    public int MaxPathDepth { get; set; } = 10;

    /// <summary>Most bytes all entries may declare uncompressed, together.</summary>
    public long MaxUncompressedBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Largest uncompressed entry.</summary>
    public long MaxEntryBytes { get; set; } = 20L * 1024 * 1024;

    /// <summary>Highest uncompressed/compressed ratio of an entry (zip bombs).</summary>
    public double MaxCompressionRatio { get; set; } = 100;

    /// <summary>Most pixels an image may declare in its header.</summary>
    public long MaxImagePixels { get; set; } = 16_000_000;

    /// <summary>Most pixels all images of one upload may declare together (decoding time is bounded by this).</summary>
    public long MaxTotalPixels { get; set; } = 2_000_000_000;

    /// <summary>Largest stored dataset (images × size² × channels, plus labels): 413 beyond it.</summary>
    public long MaxDatasetBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>Most bytes all uploaded datasets may take together: 507 when a new one would pass it.</summary>
    public long MaxTotalBytes { get; set; } = 8L * 1024 * 1024 * 1024;

    /// <summary>The stored side length when the form names none.</summary>
    public int DefaultSize { get; set; } = 28;

    /// <summary>The largest stored side length a form may ask for.</summary>
    public int MaxSize { get; set; } = 64;

    /// <summary>Whether the values make sense together (checked at start).</summary>
    public bool IsValid =>
        MaxUploadBytes > 0 && MaxEntries > 0 && MaxPathDepth >= 2 && MaxUncompressedBytes > 0 && MaxEntryBytes > 0 && MaxCompressionRatio >= 1
        && MaxImagePixels > 0 && MaxTotalPixels >= MaxImagePixels && MaxDatasetBytes > 0 && MaxTotalBytes >= MaxDatasetBytes
        && DefaultSize >= 8 && MaxSize >= DefaultSize;
}
