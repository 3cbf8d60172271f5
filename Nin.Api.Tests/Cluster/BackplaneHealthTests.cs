using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// With SignalR:Redis set, readiness reports the backplane: healthy while connected; degraded (still 200, predictions keep
/// working) while Redis is unreachable; healthy again once it is back.
/// </summary>
[Collection(TorchCollection.Name)]
[ClusterTests]
public sealed class BackplaneHealthTests
{
    [Fact]
    public async Task Readiness_reports_the_Redis_backplane_degraded_while_Redis_is_unreachable_and_healthy_when_it_is_back()
    {
        var (host, port) = TestServers.RedisEndPoint;
        await using var proxy = await TcpProxy.ToAsync(host, port);
        using var factory = new Api.NinApiFactory(new Dictionary<string, string?>
        {
            ["SignalR:Redis"] = $"127.0.0.1:{proxy.Port},connectTimeout=2000",
            ["SignalR:ChannelPrefix"] = "nin-test-" + Guid.NewGuid().ToString("N")[..8],
        });
        using var client = factory.CreateClient();

        var up = await WaitForBackplaneAsync(client, "Healthy");
        Assert.Equal(HttpStatusCode.OK, up.Status);

        proxy.Stop();
        var down = await WaitForBackplaneAsync(client, "Degraded");
        Assert.Equal(HttpStatusCode.OK, down.Status); // degraded, not unready: the replica still serves
        Assert.Equal("ready, degraded", down.Body.GetProperty("status").GetString());
        Assert.Contains("not connected", down.Body.GetProperty("checks").GetProperty("signalRBackplane").GetProperty("description").GetString(), StringComparison.Ordinal);

        proxy.Start();
        var back = await WaitForBackplaneAsync(client, "Healthy");
        Assert.Equal("ready", back.Body.GetProperty("status").GetString());
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> WaitForBackplaneAsync(HttpClient client, string status)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (body.GetProperty("checks").GetProperty("signalRBackplane").GetProperty("status").GetString() == status)
            {
                return (response.StatusCode, body);
            }

            Assert.True(DateTime.UtcNow < deadline, $"the backplane check never became {status}: {body}");
            await Task.Delay(250);
        }
    }
}
