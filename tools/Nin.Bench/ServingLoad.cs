using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace Nin.Bench;

/// <summary>
/// The two operator figures of <c>bench predict</c>: overload (open-loop arrivals at 2× and 4× the measured capacity:
/// goodput, p99 of the admitted requests, the share shed with 503) and swap (clients looping /predict through 10
/// activations: failed requests and p99 against a window without swaps).
/// </summary>
internal static class ServingLoad
{
    /// <summary>One request's outcome: its status (0: no answer) and time.</summary>
    private readonly record struct Outcome(int Status, double Ms);

    /// <summary>
    /// The open-loop flood goes through at most this many connections, as through a proxy's or load balancer's pool:
    /// requests due while every connection is busy wait in the client, and that wait counts in their time. Without a
    /// bound the client opened a connection per waiting request: on an H200 at 4× (38,000 requests/s) this bench
    /// used its 20,000 file descriptors and the runtime ended it ("Out of memory."), measuring its own limit.
    /// </summary>
    public const int DefaultOverloadConnections = 2048;

    public static async Task OverloadAsync(HttpClient http, byte[] png, string model, double seconds, int connections = DefaultOverloadConnections)
    {
        // Capacity: images/s with enough clients to keep every worker busy (closed loop).
        var (served, elapsed) = await ClosedLoopAsync(http, png, model, clients: 32, seconds);
        var capacity = served.Count(o => o.Status == 200) / elapsed;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"overload: capacity {capacity:F1} images/s (32 clients, closed loop, {seconds:F0} s); p99 there {P(served.Where(o => o.Status == 200), 0.99):F1} ms; flood through at most {connections} connections"));
        using var flood = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { BaseAddress = http.BaseAddress, Timeout = http.Timeout };
        foreach (var factor in new[] { 2, 4 })
        {
            var rate = factor * capacity;
            var watch = Stopwatch.StartNew();
            using var sampling = new CancellationTokenSource();
            var poolDelay = MaxPoolDelayAsync(http, sampling.Token);
            var outcomes = await OpenLoopAsync(flood, png, model, rate, seconds);
            var answered = watch.Elapsed.TotalSeconds; // until the last answer: goodput counts what was served in that time
            await sampling.CancelAsync();
            var delay = await poolDelay;
            var ok = outcomes.Where(o => o.Status == 200).ToArray();
            var shed = outcomes.Where(o => o.Status == 503).ToArray();
            var other = outcomes.Length - ok.Length - shed.Length;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {factor}x capacity ({rate:F0} requests/s offered, {outcomes.Length} sent): goodput {ok.Length / answered:F1} images/s ({ok.Length / answered / capacity:P0} of capacity), " +
                $"admitted p50 {P(ok, 0.5):F1} ms p99 {P(ok, 0.99):F1} ms; shed {(double)shed.Length / outcomes.Length:P1} (503 p50 {P(shed, 0.5):F1} ms, p99 {P(shed, 0.99):F1} ms); other {other}; " +
                $"the service's thread-pool delay (/metrics, sampled every 250 ms) at most {delay:F0} ms"));
        }
    }

    /// <summary>
    /// The largest <c>nin_threadpool_queue_delay_seconds</c> read while <paramref name="stop"/> is not cancelled, in
    /// milliseconds: whether a flood's requests wait for the service's threads before admission can see them.
    /// </summary>
    private static async Task<double> MaxPoolDelayAsync(HttpClient http, CancellationToken stop)
    {
        var max = 0.0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative), stop);
                if (Regex.Match(text, @"(?m)^nin_threadpool_queue_delay_seconds(?:\{[^}]*\})? (\S+)") is { Success: true } m)
                {
                    max = Math.Max(max, double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * 1000);
                }

                await Task.Delay(250, stop);
            }
            catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException)
            {
                // cancelled at the flood's end, or the scrape was refused under the flood: the next one counts
            }
        }

        return max;
    }

    public static async Task SwapAsync(HttpClient http, byte[] png, string model, int[] versions, int swaps, double pause)
    {
        const int clients = 8;
        using var stop = new CancellationTokenSource();
        var (quiet, _) = await ClosedLoopAsync(http, png, null, clients, pause * 4);
        var loops = Enumerable.Range(0, clients).Select(_ => LoopAsync(http, png, stop.Token)).ToArray();
        var activations = new List<double>();
        for (var i = 0; i < swaps; i++)
        {
            var version = versions[(i + 1) % versions.Length];
            var watch = Stopwatch.StartNew();
            // Forced: the versions swapped are random weights, which the promotion gate would refuse; the swap is what is measured.
            using var response = await http.PostAsync(new Uri($"/models/{model}/versions/{version}/activate?force=true", UriKind.Relative), null);
            activations.Add(watch.Elapsed.TotalMilliseconds);
            if (!response.IsSuccessStatusCode)
            {
                Console.WriteLine($"  activation of {model} v{version} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }

            await Task.Delay(TimeSpan.FromSeconds(pause));
        }

        await stop.CancelAsync();
        var during = (await Task.WhenAll(loops)).SelectMany(o => o).ToArray();
        var failed = during.Count(o => o.Status != 200);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"swap: {swaps} activations ({string.Join("/", versions)}) while {clients} clients looped /predict: {failed} of {during.Length} requests failed; " +
            $"p99 {P(during.Where(o => o.Status == 200), 0.99):F1} ms (without swaps {P(quiet.Where(o => o.Status == 200), 0.99):F1} ms); activation took p50 {P(activations.Select(a => new Outcome(200, a)), 0.5):F0} ms, max {activations.Max():F0} ms"));
    }

    private static async Task<(List<Outcome> Outcomes, double Seconds)> ClosedLoopAsync(HttpClient http, byte[] png, string? model, int clients, double seconds)
    {
        var outcomes = new List<Outcome>();
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (watch.Elapsed.TotalSeconds < seconds)
            {
                var outcome = await SendAsync(http, png, model);
                lock (outcomes)
                {
                    outcomes.Add(outcome);
                }
            }
        }));
        return (outcomes, watch.Elapsed.TotalSeconds);
    }

    private static async Task<List<Outcome>> LoopAsync(HttpClient http, byte[] png, CancellationToken stop)
    {
        var outcomes = new List<Outcome>();
        while (!stop.IsCancellationRequested)
        {
            outcomes.Add(await SendAsync(http, png, null));
        }

        return outcomes;
    }

    /// <summary>Requests sent at a fixed rate whatever the answers (open loop), for <paramref name="seconds"/>.</summary>
    private static async Task<Outcome[]> OpenLoopAsync(HttpClient http, byte[] png, string model, double rate, double seconds)
    {
        var sent = new List<Task<Outcome>>();
        var watch = Stopwatch.StartNew();
        for (var i = 0; ; i++)
        {
            var due = i / rate;
            if (due > seconds)
            {
                break;
            }

            var wait = due - watch.Elapsed.TotalSeconds;
            if (wait > 0.002)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait));
            }

            sent.Add(Task.Run(() => SendAsync(http, png, model)));
        }

        return await Task.WhenAll(sent);
    }

    private static async Task<Outcome> SendAsync(HttpClient http, byte[] png, string? model)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            using var content = new ByteArrayContent(png);
            content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            using var response = await http.PostAsync(new Uri(model is null ? "/predict?topK=1" : $"/predict?topK=1&model={model}", UriKind.Relative), content);
            await response.Content.ReadAsByteArrayAsync();
            return new Outcome((int)response.StatusCode, watch.Elapsed.TotalMilliseconds);
        }
        catch (HttpRequestException)
        {
            return new Outcome(0, watch.Elapsed.TotalMilliseconds);
        }
    }

    private static double P(IEnumerable<Outcome> outcomes, double p)
    {
        var sorted = outcomes.Select(o => o.Ms).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * p))];
    }
}
