using System.Diagnostics.CodeAnalysis;

namespace Nin.Api.Infrastructure;

/// <summary>
/// Bytes kept by key, bounded in total size: the least recently used entry goes first when an addition would pass the
/// limit, and an entry larger than the limit is not kept at all. Thread-safe. Used where a GET makes bytes that are
/// worth keeping (model exports, test-image thumbnails) without memory growing with requests.
/// </summary>
public sealed class ByteCache(Func<long> limit)
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, (byte[] Bytes, long Used)> entries = [];
    private long size;
    private long clock;

    public ByteCache(long limit)
        : this(() => limit)
    {
    }

    /// <summary>The bytes kept under <paramref name="key"/>, marking them as just used.</summary>
    public bool TryGet(string key, [NotNullWhen(true)] out byte[]? bytes)
    {
        lock (gate)
        {
            if (!entries.TryGetValue(key, out var hit))
            {
                bytes = null;
                return false;
            }

            entries[key] = (hit.Bytes, ++clock);
            bytes = hit.Bytes;
            return true;
        }
    }

    /// <summary>Keeps <paramref name="bytes"/> under <paramref name="key"/> (unless it is kept already or too large), evicting the least recently used first.</summary>
    public void Add(string key, byte[] bytes)
    {
        var max = limit();
        lock (gate)
        {
            if (entries.ContainsKey(key) || bytes.Length > max)
            {
                return;
            }

            while (size + bytes.Length > max && entries.Count > 0)
            {
                var oldest = entries.MinBy(e => e.Value.Used);
                entries.Remove(oldest.Key);
                size -= oldest.Value.Bytes.Length;
            }

            entries[key] = (bytes, ++clock);
            size += bytes.Length;
        }
    }
}
