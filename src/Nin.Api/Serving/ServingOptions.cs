namespace Nin.Api.Serving;

/// <summary>Inference limits and the dynamic batcher. Bound from the <c>Serving</c> section.</summary>
public sealed class ServingOptions
{
    public const string SectionName = "Serving";

    /// <summary>Most images one forward pass takes (Triton's max_batch_size).</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>
    /// How long the batcher waits for more requests after the first (Triton's max_queue_delay). 0 batches
    /// only what queued while the previous pass ran: no added latency for a lone client.
    /// </summary>
    public double MaxBatchDelayMilliseconds { get; set; }

    /// <summary>Largest accepted encoded image.</summary>
    public long MaxImageBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Most images in one request.</summary>
    public int MaxImagesPerRequest { get; set; } = 64;

    /// <summary>Largest accepted request body.</summary>
    public long MaxRequestBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Most decoded pixels per image, checked from the header before decoding.</summary>
    public long MaxImagePixels { get; set; } = 40_000_000;

    /// <summary>Non-active versions kept loaded for <c>?model=&amp;version=</c> requests.</summary>
    public int CachedVersions { get; set; } = 2;
}
