using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// The multi-process harness itself: a real service process becomes live and answers, stops gracefully on
/// SIGTERM, dies at once on SIGKILL leaving nothing behind, and the Redis server ./nin test provides answers.
/// In the Torch collection: service processes are heavy on two cores, so they never overlap training tests.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class ClusterHarnessTests(ITestOutputHelper output)
{
    private static Dictionary<string, string?> Settings(string home) => new()
    {
        ["Nin:Home"] = home,
        ["Nin:SeedDefaultModel"] = "false",
    };

    [Fact]
    public async Task A_service_process_becomes_live_answers_the_training_list_and_stops_gracefully_on_SIGTERM()
    {
        var home = Directory.CreateTempSubdirectory("nin-cluster-").FullName;
        try
        {
            await using var nin = NinProcess.Start(Settings(home), "single", output);
            await nin.WaitReadyAsync();

            using (var live = await nin.Client.GetAsync(new Uri("/health/live", UriKind.Relative)))
            {
                Assert.True(live.StatusCode == HttpStatusCode.OK, $"/health/live answered {live.StatusCode}\n{nin.Describe()}");
                var body = await live.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal("live", body.GetProperty("status").GetString());
            }

            using (var jobs = await nin.Client.GetAsync(new Uri("/train", UriKind.Relative)))
            {
                Assert.True(jobs.StatusCode == HttpStatusCode.OK, $"/train answered {jobs.StatusCode}\n{nin.Describe()}");
                var list = await jobs.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal(JsonValueKind.Array, list.ValueKind);
                Assert.Equal(0, list.GetArrayLength());
            }

            // It runs from the given home, not from its working directory (the repository).
            Assert.True(Directory.Exists(Path.Combine(home, "work")) || Directory.Exists(Path.Combine(home, "models")),
                $"nothing was created under {home}\n{nin.Describe()}");

            var status = await nin.StopAsync();
            Assert.True(status == 0, $"a graceful stop exits 0, not {status}\n{nin.Describe()}");
            Assert.Contains(nin.LogLines, l => l.Contains("Application is shutting down", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task KillHard_sends_SIGKILL_and_leaves_no_process_or_listener_behind()
    {
        var home = Directory.CreateTempSubdirectory("nin-cluster-").FullName;
        try
        {
            await using var nin = NinProcess.Start(Settings(home), "victim", output);
            await nin.WaitReadyAsync();
            var pid = nin.Pid;
            Assert.True(Directory.Exists($"/proc/{pid}"), $"pid {pid} should be running\n{nin.Describe()}");

            nin.KillHard();

            Assert.True(nin.HasExited);
            // 128 + 9: killed by SIGKILL (a graceful stop exits 0).
            Assert.True(nin.ExitCode == 137, $"exit status {nin.ExitCode}, expected 137 (SIGKILL)\n{nin.Describe()}");
            Assert.False(Directory.Exists($"/proc/{pid}"), $"pid {pid} is still there (not reaped?)");
            Assert.DoesNotContain(nin.LogLines, l => l.Contains("Application is shutting down", StringComparison.Ordinal));

            using var probe = new TcpClient();
            await Assert.ThrowsAnyAsync<SocketException>(() => probe.ConnectAsync(IPAddress.Loopback, nin.Port));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_process_that_exits_while_starting_fails_WaitReady_at_once_with_its_output()
    {
        var home = Directory.CreateTempSubdirectory("nin-cluster-").FullName;
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            var port = ((IPEndPoint)taken.LocalEndpoint).Port;
            await using var nin = NinProcess.Start(Settings(home), "clash", output, port: port);
            var watch = System.Diagnostics.Stopwatch.StartNew();

            var failure = await Assert.ThrowsAsync<Xunit.Sdk.XunitException>(() => nin.WaitReadyAsync(timeout: TimeSpan.FromSeconds(100)));

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"took {watch.Elapsed} to notice the exit");
            Assert.True(nin.HasExited);
            Assert.Contains("clash exited with status", failure.Message, StringComparison.Ordinal);
            // The service's own words about the cause reach the message.
            Assert.Contains("address already in use", failure.Message, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task The_test_Redis_server_answers_PING()
    {
        var (host, port) = TestServers.RedisEndPoint;
        using var tcp = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tcp.ConnectAsync(host, port, timeout.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync("*1\r\n$4\r\nPING\r\n"u8.ToArray(), timeout.Token);

        var reply = new StringBuilder();
        var buffer = new byte[64];
        while (!reply.ToString().EndsWith("\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(n > 0, $"{host}:{port} closed the connection after '{reply}'");
            reply.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        Assert.Equal("+PONG\r\n", reply.ToString());
    }
}
