using Xunit.Abstractions;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// A process stops cleanly (exit code 0, no unhandled exception) when Redis or PostgreSQL went away before it: a
/// deployment is often stopped backing services first.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class CleanShutdownTests(ITestOutputHelper output)
{
    private static async Task<(NinProcess Process, TcpProxy Postgres, TcpProxy Redis, string Home)> StartAsync(ITestOutputHelper output)
    {
        var home = Directory.CreateTempSubdirectory("nin-stop-").FullName;
        var schema = TestServers.NewSchema("nin_stop");
        var pg = new Npgsql.NpgsqlConnectionStringBuilder(TestServers.Postgres);
        var postgres = await TcpProxy.ToAsync(pg.Host!, pg.Port);
        pg.Host = "127.0.0.1";
        pg.Port = postgres.Port;
        pg.Timeout = 3;
        var (redisHost, redisPort) = TestServers.RedisEndPoint;
        var redis = await TcpProxy.ToAsync(redisHost, redisPort);
        var process = NinProcess.Start(new Dictionary<string, string?>
        {
            ["Nin:Home"] = home,
            ["Nin:SeedDefaultModel"] = "false",
            ["Hangfire:PostgresConnection"] = pg.ConnectionString,
            ["Hangfire:PostgresSchema"] = schema,
            ["SharedState:Schema"] = schema + "_nin",
            ["SignalR:Redis"] = $"127.0.0.1:{redis.Port},connectTimeout=2000",
            ["SignalR:ChannelPrefix"] = "nin-stop-" + Guid.NewGuid().ToString("N")[..8],
        }, "stopping", output);
        await process.WaitReadyAsync(timeout: TimeSpan.FromMinutes(2));
        return (process, postgres, redis, home);
    }

    [Theory]
    [InlineData("redis")]
    [InlineData("postgres")]
    [InlineData("both")]
    public async Task A_process_exits_0_when_its_backing_services_are_already_gone(string gone)
    {
        var (process, postgres, redis, home) = await StartAsync(output);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2)); // connected, subscribed, listening
            if (gone is "redis" or "both")
            {
                redis.Stop();
            }

            if (gone is "postgres" or "both")
            {
                postgres.Stop();
            }

            await Task.Delay(TimeSpan.FromSeconds(2));
            var exit = await process.StopAsync(TimeSpan.FromSeconds(60));
            var log = string.Join('\n', process.LogLines);
            Assert.True(exit == 0, $"exit code {exit} with {gone} gone\n{process.Describe()}");
            Assert.DoesNotContain("Unhandled exception", log, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            await process.DisposeAsync();
            await postgres.DisposeAsync();
            await redis.DisposeAsync();
            Directory.Delete(home, recursive: true);
        }
    }
}
