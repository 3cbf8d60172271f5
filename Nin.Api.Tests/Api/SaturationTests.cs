using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Infrastructure;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Shedding by the thread pool's delay: while work waits for a thread longer than
/// <c>Serving:MaxSchedulingDelayMilliseconds</c>, inference is refused with 503 + Retry-After (admission counts forward
/// work, which cannot see cores busy with HTTP work), probes keep being answered, and once the pool keeps up requests
/// are served again. The pool is held here by work items waiting on a gate, as a flood of connections holds it.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class SaturationTests(ITestOutputHelper output) : IDisposable
{
    private const int ThresholdMilliseconds = 300;

    private readonly ServingFixture fixture = new(new Dictionary<string, string?>
    {
        ["Serving:MaxSchedulingDelayMilliseconds"] = ThresholdMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
    });

    public void Dispose() => fixture.Dispose();

    private static MultipartFormDataContent Image()
    {
        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(TestImages.FashionImage(3));
        part.Headers.ContentType = new("image/png");
        form.Add(part, "images", "3.png");
        return form;
    }

    [Fact]
    public async Task While_work_waits_for_threads_inference_is_refused_at_once_and_served_again_after()
    {
        using var client = fixture.Factory.CreateClient();
        var delay = fixture.Factory.Services.GetRequiredService<SchedulingDelay>();

        // Start-up's own work can hold the pool for a moment (a 503 then is right): served once it keeps up.
        await WaitForAsync(async () =>
        {
            using var form = Image();
            using var warm = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.True(warm.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{warm.StatusCode}: {await warm.Content.ReadAsStringAsync()}");
            return warm.StatusCode == HttpStatusCode.OK && delay.Current < ThresholdMilliseconds;
        }, "a first request to be served with the pool quiet");

        // Every pool thread, and each one the pool adds, takes an item that waits on the gate; work queued after them
        // (the request, the probe) waits as it would behind a flood. Nothing here may await until the gate opens.
        using var gate = new ManualResetEventSlim();
        for (var i = 0; i < 4 * Environment.ProcessorCount + 64; i++)
        {
            ThreadPool.UnsafeQueueUserWorkItem(g => g.Wait(TimeSpan.FromSeconds(30)), gate, preferLocal: false);
        }

        Task<HttpResponseMessage> sent;
        var held = Stopwatch.StartNew();
        try
        {
            sent = Task.Run(() => client.PostAsync(new Uri("/predict", UriKind.Relative), Image()));
            while (delay.Current <= ThresholdMilliseconds + 100 && held.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(20);
            }

            Assert.True(delay.Current > ThresholdMilliseconds, $"the probe read {delay.Current:F0} ms with the pool held for {held.Elapsed.TotalMilliseconds:F0} ms");
        }
        finally
        {
            gate.Set();
        }

        using var refused = await sent;
        var body = await refused.Content.ReadFromJsonAsync<JsonElement>();
        output.WriteLine($"{(int)refused.StatusCode} after the pool was held {held.Elapsed.TotalMilliseconds:F0} ms; Retry-After {refused.Headers.RetryAfter}; {body}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.True(refused.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After {refused.Headers.RetryAfter}");
        Assert.Contains("Serving:MaxSchedulingDelayMilliseconds", body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Probes are never shed, and the refusal shows in /metrics with its reason next to the delay itself.
        using (var live = await client.GetAsync(new Uri("/health/live", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        var metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Matches("(?m)^nin_inference_shed_total\\{[^}]*reason=\"saturated\"[^}]*\\} [1-9]", metrics);
        Assert.Matches("(?m)^nin_threadpool_queue_delay_seconds(\\{[^}]*\\})? [0-9.eE+-]+", metrics);

        // Once the pool keeps up again (the reading remembers a second), requests are served.
        await WaitForAsync(() => Task.FromResult(delay.Current < ThresholdMilliseconds), "the probe to read the pool as quiet again");
        using (var form = Image())
        using (var served = await client.PostAsync(new Uri("/predict", UriKind.Relative), form))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"waited 15 s for {what}");
            await Task.Delay(50);
        }
    }
}
