namespace Nin.Api.Tests.Cluster;

/// <summary>The shared servers multi-process tests use; <c>./nin test</c> starts throwaway ones.</summary>
public static class TestServers
{
    /// <summary>NIN_TEST_POSTGRES: an Npgsql connection string.</summary>
    public static string Postgres =>
        Environment.GetEnvironmentVariable("NIN_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                "NIN_TEST_POSTGRES is not set. These tests need a PostgreSQL server: ./nin test (and .ci/run) starts a throwaway one; otherwise set NIN_TEST_POSTGRES to a connection string such as Host=127.0.0.1;Username=nin;Password=nin;Database=nin_test.");

    /// <summary>NIN_TEST_REDIS: <c>host:port</c> (a StackExchange.Redis configuration string may add <c>,options</c>).</summary>
    public static string Redis =>
        Environment.GetEnvironmentVariable("NIN_TEST_REDIS") is { Length: > 0 } r
            ? r
            : throw new InvalidOperationException(
                "NIN_TEST_REDIS is not set. These tests need a Redis server: ./nin test starts a throwaway one (Debian's redis-server on a free 127.0.0.1 port); otherwise set NIN_TEST_REDIS to host:port, e.g. 127.0.0.1:6379.");

    /// <summary>The host and port of <see cref="Redis"/> (its first endpoint).</summary>
    public static (string Host, int Port) RedisEndPoint
    {
        get
        {
            var first = Redis.Split(',')[0].Trim();
            var colon = first.LastIndexOf(':');
            return colon > 0 && int.TryParse(first[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var port)
                ? (first[..colon], port)
                : (first, 6379);
        }
    }

    /// <summary>A PostgreSQL schema name no other test uses (lower case, so it needs no quoting).</summary>
    public static string NewSchema(string prefix = "nin_test") => prefix + "_" + Guid.NewGuid().ToString("N")[..12];
}
