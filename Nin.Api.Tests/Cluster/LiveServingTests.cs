using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Google.Protobuf;
using Grpc.Net.Client;
using Nin.Api.Serving.Grpc;
using Nin.Api.Tests.Api;
using Nin.Bench;
using Nin.Model.Checkpoints;
using Xunit.Abstractions;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// The built service as a process on loopback, with its gRPC port (cleartext HTTP/2) beside its HTTP/1.1 one: a client
/// that is not .NET (Node's @grpc/grpc-js, loading the service's own .proto) runs the Open Inference Protocol's calls
/// against it; and 40 MP progressive JPEGs through every protocol keep the process within the decode memory bound.
/// </summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class LiveServingTests(ITestOutputHelper output)
{
    private const string Key = "live-key-0123456789";

    private static Dictionary<string, string?> Settings(string home, int grpcPort) => new()
    {
        ["Nin:Home"] = home,
        ["Nin:SeedDefaultModel"] = "false",
        ["Serving:GrpcPort"] = grpcPort.ToString(CultureInfo.InvariantCulture),
        ["RateLimiting:Enabled"] = "false",
    };

    private static string Home()
    {
        var home = Directory.CreateTempSubdirectory("nin-live-").FullName;
        var store = new ModelStore(Path.Combine(home, "models"));
        ServingFixture.AddRandom(store, "alpha", seed: 1);
        store.Activate("alpha", 1);
        return home;
    }

    /// <summary>Node.js where the tests run: ./nin test installs it (inside the Debian 13 root too) and the client's npm packages.</summary>
    private static string Node()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/local/bin"))
        {
            var node = Path.Combine(dir, "node");
            if (File.Exists(node))
            {
                return node;
            }
        }

        throw new InvalidOperationException("node is not installed where the tests run: ./nin test installs it (Debian's nodejs) with the gRPC client's packages (tools/grpc-client, npm ci).");
    }

    [Fact]
    public async Task A_node_grpc_client_runs_the_protocol_while_http1_clients_keep_working_on_the_main_port()
    {
        var home = Home();
        var grpcPort = NinProcess.FreeLoopbackPort();
        var settings = Settings(home, grpcPort);
        settings["Security:ApiKeys:0"] = Key;
        settings["Security:ProtectPredict"] = "true";
        var nin = NinProcess.Start(settings, "grpc", output);
        try
        {
            await nin.WaitReadyAsync("/health/ready");
            var client = Path.Combine(TestPaths.RepoRoot, "tools", "grpc-client", "oip.mjs");
            Assert.True(Directory.Exists(Path.Combine(TestPaths.RepoRoot, "tools", "grpc-client", "node_modules", "@grpc", "grpc-js")),
                "tools/grpc-client/node_modules is missing: ./nin test runs npm ci there");
            var png = Path.Combine(home, "image.png");
            await File.WriteAllBytesAsync(png, TestImages.FashionImage(0));

            // Plain HTTP/1.1 on the main port at the same time as the gRPC client on its own.
            using var stop = new CancellationTokenSource();
            var keyed = new HttpClient { BaseAddress = nin.BaseAddress };
            keyed.DefaultRequestHeaders.Add("X-Api-Key", Key);
            var http1 = SafeActivationTests.LoopAsync(keyed, stop.Token);

            var start = new ProcessStartInfo(Node(), [client, $"127.0.0.1:{grpcPort}", "alpha", png, Key])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = TestPaths.RepoRoot,
            };
            using var node = Process.Start(start)!;
            var stdout = node.StandardOutput.ReadToEndAsync();
            var stderr = node.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await node.WaitForExitAsync(timeout.Token);
            output.WriteLine(await stdout);
            Assert.True(node.ExitCode == 0, $"node client exited {node.ExitCode}: {await stderr}\n{await stdout}\n{nin.Describe()}");
            foreach (var check in new[] { "BYTES raw inference", "FP32 typed inference", "classification extension", "unknown input name refused", "timeout parameter honoured", "wrong key refused", "missing key refused" })
            {
                Assert.Contains($"\"check\":\"{check}\",\"ok\":true", await stdout, StringComparison.Ordinal);
            }

            await stop.CancelAsync();
            var answers = await http1;
            Assert.NotEmpty(answers);
            Assert.All(answers, a => Assert.True(a.Status == HttpStatusCode.OK, $"{a.Status} {a.Body}"));

            // The gRPC port speaks HTTP/2 only; the main port is not HTTP/2 without TLS, so HTTP/1.1 clients are unaffected.
            using var onGrpcPort = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{grpcPort}"), Timeout = TimeSpan.FromSeconds(10) };
            try
            {
                // Kestrel answers an HTTP/1.1 request there with a 400 that says the endpoint is HTTP/2 only.
                using var refused = await onGrpcPort.GetAsync(new Uri("/health/live", UriKind.Relative));
                Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            }
            catch (HttpRequestException)
            {
                // or closes the connection: either way HTTP/1.1 is not served on the gRPC port.
            }

            using var live = await nin.Client.GetAsync(new Uri("/health/live", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }
        finally
        {
            await nin.DisposeAsync();
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Big_progressive_jpegs_through_every_protocol_stay_within_the_decode_bound()
    {
        var home = Home();
        var grpcPort = NinProcess.FreeLoopbackPort();
        var settings = Settings(home, grpcPort);
        // Two decode slots whatever this machine has, so the bound is the same everywhere: 2 × 40 MP × 6 B (a 4:4:4
        // progressive JPEG's coefficients) = 458 MiB, within the README's baseline + 512 MiB.
        settings["DOTNET_PROCESSOR_COUNT"] = "2";
        var nin = NinProcess.Start(settings, "memory", output);
        try
        {
            await nin.WaitReadyAsync("/health/ready");
            var jpeg = ProgressiveJpeg.Grey(6_324, 6_324); // 39.99 MP, ~230 KiB
            using var grpc = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}");
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(grpc);
            var protocols = new (string Name, Func<Task<bool>> Send)[]
            {
                ("predict", async () =>
                {
                    using var form = new MultipartFormDataContent { { new ByteArrayContent(jpeg) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } }, "images", "big.jpg" } };
                    using var r = await nin.Client.PostAsync(new Uri("/predict", UriKind.Relative), form);
                    return r.IsSuccessStatusCode;
                }),
                ("v2 json", async () =>
                {
                    var json = $$"""{"inputs":[{"name":"images","shape":[1],"datatype":"BYTES","data":["{{Convert.ToBase64String(jpeg)}}"]}]}""";
                    using var r = await nin.Client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));
                    return r.IsSuccessStatusCode;
                }),
                ("v2 binary", async () =>
                {
                    var header = Encoding.UTF8.GetBytes("{\"inputs\":[{\"name\":\"images\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":" + (jpeg.Length + 4) + "}}]}");
                    var body = header.Concat(BitConverter.GetBytes(jpeg.Length)).Concat(jpeg).ToArray();
                    using var content = new ByteArrayContent(body);
                    content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString(CultureInfo.InvariantCulture));
                    using var r = await nin.Client.PostAsync(new Uri("/v2/models/alpha/infer", UriKind.Relative), content);
                    return r.IsSuccessStatusCode;
                }),
                ("grpc", async () =>
                {
                    var request = new ModelInferRequest { ModelName = "alpha" };
                    var input = new ModelInferRequest.Types.InferInputTensor { Name = "images", Datatype = "BYTES", Contents = new InferTensorContents() };
                    input.Shape.Add(1);
                    input.Contents.BytesContents.Add(ByteString.CopyFrom(jpeg));
                    request.Inputs.Add(input);
                    return (await client.ModelInferAsync(request)).Outputs.Count == 2;
                }),
            };

            // Warm-up: every protocol once, then the baseline.
            foreach (var (name, send) in protocols)
            {
                Assert.True(await send(), name);
            }

            await Task.Delay(1000);
            var baseline = ProcessMemory.Rss(nin.Pid);
            foreach (var (name, send) in protocols)
            {
                using var sampler = new ProcessMemory.PeakSampler(nin.Pid);
                var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => send()));
                var peak = sampler.Stop();
                var above = (peak - baseline) / 1048576.0;
                output.WriteLine($"{name}: 4 concurrent 40 MP progressive JPEGs, peak {peak / 1048576.0:F0} MiB = baseline {baseline / 1048576.0:F0} + {above:F0} MiB");
                Assert.All(answers, Assert.True);
                Assert.True(above <= 512, $"{name}: {above:F0} MiB above the baseline; the decode bound is 512 MiB\n{nin.Describe()}");
            }
        }
        finally
        {
            await nin.DisposeAsync();
            Directory.Delete(home, recursive: true);
        }
    }
}
