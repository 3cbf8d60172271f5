using Nin.Api.Infrastructure;

namespace Nin.Api.Tests.Api;

/// <summary>The bounded byte cache behind exports and thumbnails: least recently used out first, never past its limit.</summary>
[UnitTests]
public sealed class ByteCacheTests
{
    [Fact]
    public void The_least_recently_used_entry_goes_first_and_the_limit_holds()
    {
        var cache = new ByteCache(10);
        cache.Add("a", new byte[4]);
        cache.Add("b", new byte[4]);
        Assert.True(cache.TryGet("a", out _)); // a is now newer than b
        cache.Add("c", new byte[4]); // 12 > 10: b goes, not a
        Assert.True(cache.TryGet("a", out _));
        Assert.False(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("c", out var c));
        Assert.Equal(4, c.Length);

        cache.Add("huge", new byte[11]); // larger than the whole cache: not kept, nothing evicted for it
        Assert.False(cache.TryGet("huge", out _));
        Assert.True(cache.TryGet("a", out _) && cache.TryGet("c", out _));

        var first = new byte[] { 1 };
        cache.Add("c", first); // a key kept already keeps its bytes
        Assert.True(cache.TryGet("c", out var again));
        Assert.Equal(4, again.Length);
    }

    [Fact]
    public void The_limit_is_read_when_adding()
    {
        long limit = 4;
        var cache = new ByteCache(() => limit);
        cache.Add("a", new byte[4]);
        limit = 2;
        cache.Add("b", new byte[2]); // the lowered limit evicts a
        Assert.False(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("b", out _));
    }
}
