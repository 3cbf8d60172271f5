using System.Net;
using System.Net.Sockets;
using System.Text;
using Nin.Api.Tests.Api;
using Nin.Api.Tests.Cluster;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Hostile;

/// <summary>
/// More connections than the process has file descriptors for. Without a bound every descriptor went to a connection,
/// and the service could then open nothing else (a model, a directory, a pipe): on a GPU replica flooded at 4x its
/// capacity the runtime ended the process ("Out of memory."). With the bound (Kestrel's MaxConcurrentConnections,
/// derived from RLIMIT_NOFILE) the excess connections are closed at once and the service keeps everything it needs.
/// </summary>
[HostTests]
public sealed class ConnectionFloodTests(ITestOutputHelper output)
{
    private const int Descriptors = 1024;
    private const int Flood = 1200; // with the ~350 descriptors the idle service holds, well past 1,024

    [Fact]
    public Task A_flood_of_connections_past_the_descriptor_limit_is_cut_off_and_the_service_keeps_serving() => WithServiceAsync("flood", FloodAsync);

    /// <summary>Runs <paramref name="test"/> against a service allowed <see cref="Descriptors"/> file descriptors, in a fresh home deleted afterwards.</summary>
    private async Task WithServiceAsync(string name, Func<NinProcess, Task> test)
    {
        var home = Directory.CreateTempSubdirectory("nin-flood-").FullName;
        try
        {
            await using var nin = NinProcess.Start(new Dictionary<string, string?>
            {
                ["Nin:Home"] = home,
                ["RateLimiting:Enabled"] = "false",
            }, name, output, fileDescriptors: Descriptors);
            await nin.WaitReadyAsync("/health/ready", TimeSpan.FromMinutes(3));
            await test(nin);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    private async Task FloodAsync(NinProcess nin)
    {
        var allowed = ConnectionLimitsDefault(Descriptors);
        Assert.Contains(nin.LogLines, l => l.Contains($"concurrent connections: at most {allowed:N0}", StringComparison.Ordinal));

        // Each connection starts a /predict and never sends its body: held open until the server closes it.
        var sockets = new List<Socket>();
        try
        {
            var head = Encoding.ASCII.GetBytes("POST /predict HTTP/1.1\r\nHost: flood\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\u0089PNG");
            for (var i = 0; i < Flood; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                try
                {
                    await socket.ConnectAsync(IPAddress.Loopback, nin.Port);
                    await socket.SendAsync(head);
                }
                catch (SocketException)
                {
                    // refused, or already closed by the server: counted below as closed
                }
            }

            // The server closes what is beyond its bound: a read returns 0 bytes (or the connection was reset).
            await Task.Delay(TimeSpan.FromSeconds(3));
            var closed = sockets.Count(Closed);
            output.WriteLine($"{Flood} connections, {closed} closed by the service, bound {allowed}");
            Assert.False(nin.HasExited, $"the service exited under the flood.\n{nin.Describe()}");
            Assert.InRange(closed, Flood - allowed, Flood);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        // Once the flood has gone the service answers as before, and it never ran out of descriptors.
        await nin.WaitReadyAsync("/health/ready", TimeSpan.FromSeconds(30));
        using (var predict = await nin.Client.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0))))
        {
            Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        }

        Assert.DoesNotContain(nin.LogLines, l => l.Contains("Too many open files", StringComparison.Ordinal) || l.Contains("Out of memory", StringComparison.Ordinal));
    }

    [Fact]
    public Task Connections_that_arrive_under_pressure_get_503_with_retry_after_while_earlier_ones_and_probes_are_served() => WithServiceAsync("pressure", PressureAsync);

    private async Task PressureAsync(NinProcess nin)
    {
        var threshold = Nin.Api.Infrastructure.ConnectionPressure.ResolveThreshold(null, ConnectionLimitsDefault(Descriptors))!.Value; // 224 of 256

        // A client that connected before the pressure, and idle connections past the threshold (under the bound).
        using var early = new HttpClient(new SocketsHttpHandler()) { BaseAddress = nin.BaseAddress };
        using (var warm = await early.GetAsync(new Uri("/health/live", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        var held = new List<Socket>();
        try
        {
            for (var i = 0; i < threshold + 8; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                held.Add(socket);
                await socket.ConnectAsync(IPAddress.Loopback, nin.Port);
            }

            await Task.Delay(TimeSpan.FromSeconds(1)); // accepted by now

            // A new connection's request is refused at once, with a reason and when to retry, and the connection closed.
            using (var late = new HttpClient(new SocketsHttpHandler()) { BaseAddress = nin.BaseAddress })
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                using var refused = await late.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0)));
                output.WriteLine($"{held.Count} held connections, threshold {threshold}: {(int)refused.StatusCode} in {watch.ElapsedMilliseconds} ms");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.True(refused.Headers.RetryAfter is not null, "503 without Retry-After");
                Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
                var reason = await refused.Content.ReadAsStringAsync();
                Assert.Contains("connections", reason, StringComparison.Ordinal);
                Assert.Contains($"above {threshold:N0}", reason, StringComparison.Ordinal);
                Assert.True(refused.Headers.ConnectionClose == true, "the refused connection is kept open");
            }

            // A probe on a new connection is still answered (a failing liveness probe would get the replica killed), and
            // the client that came before the pressure is served as usual.
            using (var probe = new HttpClient(new SocketsHttpHandler()) { BaseAddress = nin.BaseAddress })
            using (var live = await probe.GetAsync(new Uri("/health/live", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.OK, live.StatusCode);
            }

            using var served = await early.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0)));
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);

            // Operators see it: the refusal is counted and the open connections are a gauge.
            var metrics = await early.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Matches(@"(?m)^nin_connections_shed_total(\{[^}]*\})? [1-9]", metrics);
            Assert.Matches(@"(?m)^nin_connections_open(\{[^}]*\})? [1-9][0-9]{2}", metrics);
        }
        finally
        {
            foreach (var socket in held)
            {
                socket.Dispose();
            }
        }

        // Once the pressure is gone, new connections are served again.
        await Task.Delay(TimeSpan.FromSeconds(1));
        using var after = new HttpClient(new SocketsHttpHandler()) { BaseAddress = nin.BaseAddress };
        using var predict = await after.PostAsync(new Uri("/predict", UriKind.Relative), PredictApiTests.Form(PredictApiTests.Png(0)));
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
    }

    [Theory]
    [InlineData(null, 256L, 224L)] // seven eighths of the connection bound
    [InlineData(null, null, null)] // no bound, no threshold
    [InlineData(0L, 256L, null)] // 0: never
    [InlineData(100L, 256L, 100L)]
    public void The_pressure_threshold_defaults_below_the_connection_bound(long? configured, long? bound, long? threshold) =>
        Assert.Equal(threshold, Nin.Api.Infrastructure.ConnectionPressure.ResolveThreshold(configured, bound));

    [Theory]
    [InlineData(1024, 256)] // a quarter: the reserve would leave nothing
    [InlineData(20_000, 18_000)] // a tenth kept for the service's own files
    [InlineData(1_048_576, 1_032_192)] // the reserve stops at 16,384
    public void The_default_bound_leaves_descriptors_for_the_service(long descriptors, long connections) =>
        Assert.Equal(connections, ConnectionLimitsDefault(descriptors));

    private static long ConnectionLimitsDefault(long descriptors) => Nin.Api.Infrastructure.ConnectionLimits.DefaultMaxConnections(descriptors)!.Value;

    private static bool Closed(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }
}
