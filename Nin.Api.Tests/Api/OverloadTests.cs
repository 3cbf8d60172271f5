using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Infrastructure;
using Nin.Api.Serving;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Admission and deadlines: a flood of four times what the queue admits gets 503 + Retry-After at once for the excess,
/// every admitted request is answered (none waits for the request timeout), and a lone client's latency afterwards is
/// what it was; a request past its deadline is answered 504 and its images are not run; while work waits too long for a
/// thread, inference is refused, probes are answered, and service resumes once the pool keeps up.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class OverloadTests(ITestOutputHelper output) : IDisposable
{
    private const int ImagesPerRequest = 8;
    private const int ThresholdMilliseconds = 300;
    private readonly ServingFixture fixture = new(new Dictionary<string, string?>
    {
        // A short queue, so a flood is quick to make on any machine; the default (2 s) is sized the same way.
        ["Serving:MaxQueueMilliseconds"] = "250",
    });

    public void Dispose() => fixture.Dispose();

    private static readonly byte[][] Pngs = Enumerable.Range(0, ImagesPerRequest).Select(i => TestImages.FashionImage(i)).ToArray();

    private static MultipartFormDataContent Images(int count)
    {
        var form = new MultipartFormDataContent();
        for (var i = 0; i < count; i++)
        {
            var part = new ByteArrayContent(Pngs[i]); // encoded once: the flood's client does little work of its own
            part.Headers.ContentType = new("image/png");
            form.Add(part, "images", $"{i}.png");
        }

        return form;
    }

    private async Task<double> LoneLatencyAsync(HttpClient client)
    {
        var times = new List<double>();
        for (var i = 0; i < 15; i++)
        {
            var watch = Stopwatch.StartNew();
            using var form = Images(1);
            using var response = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return times[times.Count / 2];
    }

    [Fact]
    public async Task A_flood_past_the_queue_is_shed_at_once_every_admitted_request_is_answered_and_latency_recovers()
    {
        using var client = fixture.Factory.CreateClient();
        var before = await LoneLatencyAsync(client);

        // Four times what the queue admits: its bound over the version's measured cost per image, per worker.
        var engine = fixture.Factory.Services.GetRequiredService<InferenceEngine>();
        var registry = fixture.Factory.Services.GetRequiredService<ModelRegistry>();
        var model = (await registry.AcquireAsync(null, null, CancellationToken.None))!;
        var perImage = model.ImageMilliseconds;
        model.Release();
        var capacity = 250 * engine.WorkerCount / perImage;
        var clients = (int)Math.Clamp(Math.Ceiling(4 * capacity / ImagesPerRequest), 8, 400);
        output.WriteLine($"{perImage:F2} ms per image, {engine.WorkerCount} workers: the queue admits ~{capacity:F0} images; {clients} clients of {ImagesPerRequest} images");

        var results = new List<(HttpStatusCode Status, double Ms, string? RetryAfter)>();
        var start = new TaskCompletionSource();
        var tasks = Enumerable.Range(0, clients).Select(async _ =>
        {
            await start.Task;
            var mine = new List<(HttpStatusCode, double, string?)>();
            for (var round = 0; round < 3; round++)
            {
                using var form = Images(ImagesPerRequest);
                var watch = Stopwatch.StartNew();
                using var response = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
                await response.Content.ReadAsByteArrayAsync();
                mine.Add((response.StatusCode, watch.Elapsed.TotalMilliseconds, response.Headers.RetryAfter?.ToString()));
            }

            return mine;
        }).ToArray();
        start.SetResult();
        foreach (var r in await Task.WhenAll(tasks))
        {
            results.AddRange(r);
        }

        var shed = results.Where(r => r.Status == HttpStatusCode.ServiceUnavailable).ToArray();
        var served = results.Where(r => r.Status == HttpStatusCode.OK).ToArray();
        var other = results.Where(r => r.Status is not (HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable)).ToArray();
        var shedMs = shed.Select(r => r.Ms).Order().ToArray();
        var servedMs = served.Select(r => r.Ms).Order().ToArray();
        output.WriteLine($"{results.Count} requests: {served.Length} served (p50 {Pct(servedMs, 0.5):F0} ms, max {servedMs.LastOrDefault():F0} ms), " +
            $"{shed.Length} shed (p50 {Pct(shedMs, 0.5):F1} ms, p95 {Pct(shedMs, 0.95):F1} ms, max {shedMs.LastOrDefault():F1} ms), {other.Length} other");

        Assert.Empty(other); // no 504, no 500: every admitted request was answered
        Assert.NotEmpty(shed);
        Assert.NotEmpty(served);
        Assert.All(shed, r => Assert.True(int.TryParse(r.RetryAfter, out var s) && s >= 1, $"Retry-After '{r.RetryAfter}'"));
        // "At once" against this run's own baseline, not a wall-clock bound (machines differ): a refusal that waited in
        // the queue would take about as long as an admitted request, so the typical 503 must come before those.
        // Medians, not the 503s' p95: with hundreds of clients on two cores, a refusal's tail is the flood's own reading
        // and decoding (CI saw a p95 of 408 ms against an admitted p50 of 332 ms), not time in the queue.
        Assert.True(Pct(shedMs, 0.5) < Pct(servedMs, 0.5), $"503s took p50 {Pct(shedMs, 0.5):F1} ms (p95 {Pct(shedMs, 0.95):F1}), admitted requests p50 {Pct(servedMs, 0.5):F1} ms; refusals should not wait in the queue");
        Assert.True(servedMs[^1] < 15_000, $"an admitted request took {servedMs[^1]:F0} ms: admission should bound the wait to about its queue");

        var after = await LoneLatencyAsync(client);
        output.WriteLine($"lone client p50: {before:F1} ms before, {after:F1} ms after");
        Assert.True(after <= Math.Max(3 * before, before + 25), $"latency after the flood {after:F1} ms vs {before:F1} ms before");
    }

    [Fact]
    public async Task A_request_past_its_deadline_is_504_and_its_images_are_not_run()
    {
        using var client = fixture.Factory.CreateClient();
        var engine = fixture.Factory.Services.GetRequiredService<InferenceEngine>();

        // A busy queue ahead (a few admitted requests), then a request whose deadline passes while it waits.
        var busy = Enumerable.Range(0, 4).Select(async _ =>
        {
            using var form = Images(ImagesPerRequest);
            using var r = await client.PostAsync(new Uri("/predict", UriKind.Relative), form);
            return r.StatusCode;
        }).ToArray();
        var cancelledBefore = engine.Stats.CancelledImages;
        using (var form = Images(ImagesPerRequest))
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/predict", UriKind.Relative)) { Content = form })
        {
            request.Headers.Add(InferenceDeadlines.Header, "1");
            using var late = await client.SendAsync(request);
            var problem = await late.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(late.StatusCode == HttpStatusCode.GatewayTimeout, $"{late.StatusCode} {problem}");
            Assert.Contains("deadline", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }

        Assert.All(await Task.WhenAll(busy), s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, s.ToString()));

        // Bad deadlines are 400s; the KServe timeout parameter (microseconds) is one too.
        using (var form = Images(1))
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/predict", UriKind.Relative)) { Content = form })
        {
            request.Headers.Add(InferenceDeadlines.Header, "soon");
            using var bad = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var body = $$"""{"parameters":{"timeout":1},"inputs":[{"name":"images","shape":[1],"datatype":"BYTES","data":["{{Convert.ToBase64String(TestImages.FashionImage(0))}}"]}]}""";
        using var v2 = await client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.GatewayTimeout, v2.StatusCode);
        Assert.Contains("deadline", (await v2.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);

        using var metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative)).ContinueWith(t => new StringReader(t.Result));
        var text = metrics.ReadToEnd();
        Assert.Contains("nin_inference_timeouts_total{", text, StringComparison.Ordinal);
        Assert.Contains("nin_inference_queue_duration_seconds_bucket{", text, StringComparison.Ordinal);
        Assert.Contains("protocol=\"v2\"", text, StringComparison.Ordinal);
        output.WriteLine($"images skipped by the batcher since the late request: {engine.Stats.CancelledImages - cancelledBefore}");
    }

    [Fact]
    public async Task While_work_waits_for_threads_inference_is_refused_at_once_and_served_again_after()
    {
        // Shedding by the thread pool's delay (Serving:MaxSchedulingDelayMilliseconds): admission counts forward work,
        // which cannot see cores busy with HTTP work. The pool is held here by items waiting on a gate, as a flood holds it.
        using var saturable = new ServingFixture(new Dictionary<string, string?> { ["Serving:MaxSchedulingDelayMilliseconds"] = $"{ThresholdMilliseconds}" });
        using var client = saturable.Factory.CreateClient();
        var delay = saturable.Factory.Services.GetRequiredService<SchedulingDelay>();

        // Start-up's own work can hold the pool for a moment (a 503 then is right): served once it keeps up.
        await WaitForAsync(async () =>
        {
            using var form = Images(1);
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
            sent = Task.Run(() => client.PostAsync(new Uri("/predict", UriKind.Relative), Images(1)));
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
        using (var form = Images(1))
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

    private static double Pct(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * p))];
}
