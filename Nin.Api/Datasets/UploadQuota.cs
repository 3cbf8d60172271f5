namespace Nin.Api.Datasets;

/// <summary>
/// The storage quotas of uploaded datasets: one dataset may take at most <see cref="DatasetUploadOptions.MaxDatasetBytes"/>
/// (413 beyond), all of them together <see cref="DatasetUploadOptions.MaxTotalBytes"/> (507 when a new one would pass
/// it). An import reserves its least possible size before decoding anything, so concurrent imports cannot each pass a
/// check the other makes false, and confirms its exact size before it writes.
/// </summary>
public sealed class UploadQuota(Func<string> root)
{
    private readonly Lock gate = new();
    private long reserved;

    /// <summary>Bytes the stored uploads take on disk now.</summary>
    public long Used()
    {
        var dir = root();
        return Directory.Exists(dir)
            ? new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
            : 0;
    }

    /// <summary>Holds <paramref name="bytes"/> against both quotas until disposed; throws 413 or 507 when they do not fit.</summary>
    public Reservation Reserve(long bytes, DatasetUploadOptions limits)
    {
        CheckDataset(bytes, limits);
        lock (gate)
        {
            CheckTotal(bytes, limits);
            reserved += bytes;
        }

        return new Reservation(this, bytes, limits);
    }

    private static void CheckDataset(long bytes, DatasetUploadOptions limits)
    {
        if (bytes > limits.MaxDatasetBytes)
        {
            throw new DatasetUploadException(StatusCodes.Status413PayloadTooLarge,
                $"The dataset would take {bytes:N0} bytes stored; one dataset may take at most {limits.MaxDatasetBytes:N0} (DatasetUploads:MaxDatasetBytes). Use a smaller size, fewer images or channels=1.");
        }
    }

    private void CheckTotal(long bytes, DatasetUploadOptions limits)
    {
        var used = Used() + reserved;
        if (used + bytes > limits.MaxTotalBytes)
        {
            throw new DatasetUploadException(StatusCodes.Status507InsufficientStorage,
                $"Uploaded datasets take {used:N0} of the {limits.MaxTotalBytes:N0} bytes allowed (DatasetUploads:MaxTotalBytes); this one needs {bytes:N0}. Delete datasets no longer used.");
        }
    }

    /// <summary>A hold on quota; <see cref="Confirm"/> grows or shrinks it to the exact size before the dataset is written.</summary>
    public sealed class Reservation(UploadQuota quota, long bytes, DatasetUploadOptions limits) : IDisposable
    {
        private long held = bytes;

        public void Confirm(long exact)
        {
            CheckDataset(exact, limits);
            lock (quota.gate)
            {
                quota.reserved -= held;
                held = 0;
                quota.CheckTotal(exact, limits);
                quota.reserved += exact;
                held = exact;
            }
        }

        public void Dispose()
        {
            lock (quota.gate)
            {
                quota.reserved -= held;
                held = 0;
            }
        }
    }
}
