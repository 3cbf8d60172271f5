using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Nin.Api.Tests.Cluster;

/// <summary>
/// The built service as a separate OS process (<c>dotnet Nin.Api.dll</c> from the tests' bin folder) on a free
/// loopback port, configured through environment variables, for tests that need several real instances
/// (roles, shared PostgreSQL/Redis, a worker killed mid-job). Its console output is kept (the last lines) and
/// shown when it fails to start, in <see cref="Describe"/> for assertion messages, and in the test output.
/// Dispose stops it with SIGTERM (SIGKILL after a timeout); instances still running when the test process
/// exits are killed then.
/// </summary>
public sealed class NinProcess : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<NinProcess, byte> Running = new();

    private readonly Process process;
    private readonly ConcurrentQueue<string> log = new();
    private readonly int maxLogLines;
    private readonly ITestOutputHelper? output;
    private bool disposed;

    static NinProcess()
    {
        // A test that forgot (or never reached) DisposeAsync must not leave services running after the run.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var p in Running.Keys)
            {
                p.KillHard();
            }
        };
    }

    private NinProcess(string name, Process process, int port, int maxLogLines, ITestOutputHelper? output)
    {
        Name = name;
        this.process = process;
        this.maxLogLines = maxLogLines;
        this.output = output;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>A label for messages (e.g. "api", "worker-1").</summary>
    public string Name { get; }

    public int Port { get; }

    public Uri BaseAddress { get; }

    /// <summary>An HTTP client of this instance (BaseAddress set); disposed with it.</summary>
    public HttpClient Client { get; }

    public int Pid => process.Id;

    public bool HasExited => process.HasExited;

    /// <summary>The exit status once exited (137 after SIGKILL, 0 after a graceful stop).</summary>
    public int ExitCode => process.ExitCode;

    /// <summary>The last lines the process wrote (stdout and stderr, in arrival order).</summary>
    public IReadOnlyList<string> LogLines => log.ToArray();

    /// <summary>
    /// Starts the service. <paramref name="settings"/> are configuration keys (<c>Section:Key</c>), passed as
    /// <c>Section__Key</c> environment variables; <c>Nin:Home</c> is required (the default, the current directory,
    /// would be the repository). Defaults that keep it offline and on the CPU are added unless given:
    /// <c>Nin:DataDirectory</c> (the shared datasets), <c>Nin:DownloadDatasets=false</c>, <c>Torch:Device=cpu</c>.
    /// <paramref name="port"/>: listen there (e.g. to restart an instance at the same address), else on a free port.
    /// <paramref name="fileDescriptors"/>: start it with that many file descriptors allowed (soft and hard limit).
    /// </summary>
    public static NinProcess Start(
        IReadOnlyDictionary<string, string?> settings,
        string name = "nin",
        ITestOutputHelper? output = null,
        int maxLogLines = 300,
        int? port = null,
        int? fileDescriptors = null)
    {
        if (!settings.TryGetValue("Nin:Home", out var home) || string.IsNullOrWhiteSpace(home))
        {
            throw new ArgumentException("Nin:Home must be set: without it the service would keep its files in its working directory (the repository).", nameof(settings));
        }

        var dll = Path.Combine(AppContext.BaseDirectory, "Nin.Api.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} is missing: the test project should copy the referenced service into its bin folder.");
        }

        var listenPort = port ?? FreeLoopbackPort();
        // fileDescriptors: the process's RLIMIT_NOFILE (soft and hard), set by the shell that then becomes the service.
        string[] command = fileDescriptors is { } n ? ["/bin/sh", "-c", $"ulimit -n {n} && exec \"$0\" \"$@\"", DotnetHost(), dll] : [DotnetHost(), dll];
        var start = new ProcessStartInfo(command[0], command[1..])
        {
            // The content root, as for ./nin serve and WebApplicationFactory: appsettings.json and wwwroot live
            // there. The shipped default model is found beside the dll (AppContext.BaseDirectory).
            WorkingDirectory = Path.Combine(TestPaths.RepoRoot, "Nin.Api"),
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };

        // What the test process inherited must not configure the child behind the test's back.
        foreach (var key in start.Environment.Keys.ToList())
        {
            if (key.Contains("__", StringComparison.Ordinal)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)
                || key is "DOTNET_ENVIRONMENT" or "NIN_HOME" or "NIN_DATA_DIR" or "NIN_MODELS_DIR" or "NIN_WORK_DIR"
                    or "NIN_ROLE" or "NIN_INVOCATION_DIR")
            {
                start.Environment.Remove(key);
            }
        }

        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{listenPort}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Testing";
        var all = new Dictionary<string, string?>
        {
            ["Nin:DataDirectory"] = TestPaths.SharedDatasets,
            ["Nin:DownloadDatasets"] = "false",
            ["Torch:Device"] = "cpu",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        foreach (var (key, value) in all)
        {
            if (value is not null)
            {
                start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var nin = new NinProcess(name, process, listenPort, maxLogLines, output);
        process.OutputDataReceived += (_, e) => nin.Append(e.Data);
        process.ErrorDataReceived += (_, e) => nin.Append(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {start.FileName} {dll}");
        }

        Running[nin] = 0;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return nin;
    }

    /// <summary>
    /// Polls <paramref name="path"/> until it answers 200; fails at once, with the log, if the process exits,
    /// and with the log when the time is up.
    /// </summary>
    public async Task WaitReadyAsync(string path = "/health/live", TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(120);
        var watch = Stopwatch.StartNew();
        var last = "no answer yet";
        using var probe = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            if (process.HasExited)
            {
                throw new XunitException($"{Name} exited with status {process.ExitCode} before {path} answered 200.\n{Describe()}");
            }

            try
            {
                using var response = await probe.GetAsync(new Uri(path, UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }

                last = $"{(int)response.StatusCode} {response.StatusCode}";
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException)
            {
                last = "no answer within 5 s";
            }

            if (watch.Elapsed > limit)
            {
                throw new XunitException($"{Name}: {path} did not answer 200 within {limit.TotalSeconds:0} s (last: {last}).\n{Describe()}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>SIGSTOP: the process stops running (a long pause, a suspended VM) but keeps its sockets.</summary>
    public void Pause()
    {
        if (SendSignal(process.Id, Sigstop) != 0)
        {
            throw new InvalidOperationException($"{Name}: SIGSTOP failed (errno {Marshal.GetLastPInvokeError()})");
        }

        Append($"[harness] {Name} paused (SIGSTOP)");
    }

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume()
    {
        if (SendSignal(process.Id, Sigcont) != 0)
        {
            throw new InvalidOperationException($"{Name}: SIGCONT failed (errno {Marshal.GetLastPInvokeError()})");
        }

        Append($"[harness] {Name} resumed (SIGCONT)");
    }

    /// <summary>SIGKILL (Process.Kill sends SIGKILL on Unix), the process tree included; waits until it is reaped.</summary>
    public void KillHard()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }

        Running.TryRemove(this, out _);
    }

    /// <summary>
    /// SIGTERM (the host shuts down gracefully), SIGKILL if it has not exited within <paramref name="grace"/>;
    /// returns the exit status.
    /// </summary>
    public async Task<int> StopAsync(TimeSpan? grace = null)
    {
        if (!process.HasExited)
        {
            _ = SendSignal(process.Id, Sigcont); // a paused process cannot act on SIGTERM
            if (SendSignal(process.Id, Sigterm) != 0)
            {
                KillHard();
            }

            using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(20));
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                Append($"[harness] {Name} did not stop within the grace period after SIGTERM: SIGKILL");
                KillHard();
            }
        }

        // The asynchronous reads end with the streams; give them a moment so the log is complete.
        process.WaitForExit(TimeSpan.FromSeconds(10));
        Running.TryRemove(this, out _);
        return process.ExitCode;
    }

    /// <summary>Name, pid, port, state and the last log lines: for assertion messages.</summary>
    public string Describe()
    {
        string state;
        try
        {
            state = process.HasExited ? $"exited with status {process.ExitCode}" : "running";
        }
        catch (InvalidOperationException)
        {
            state = "not started";
        }

        var lines = LogLines;
        return $"--- {Name} (pid {SafePid()}, {BaseAddress}, {state}); last {lines.Count} lines of its output:\n"
            + string.Join('\n', lines) + $"\n--- end of {Name}";
    }

    public async ValueTask DisposeAsync()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        try
        {
            await StopAsync();
        }
        finally
        {
            KillHard();
            Client.Dispose();
            if (output is not null)
            {
                try
                {
                    output.WriteLine(Describe());
                }
                catch (InvalidOperationException)
                {
                    // The test has already finished; the output helper no longer takes lines.
                }
            }

            process.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        log.Enqueue(line);
        while (log.Count > maxLogLines && log.TryDequeue(out _))
        {
        }
    }

    private string SafePid()
    {
        try
        {
            return process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    /// <summary>A port nobody listens on now (the OS picks it; a race with another process is unlikely).</summary>
    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// The dotnet host the tests run with: this process when it is the dotnet muxer (testhost runs under
    /// <c>dotnet exec</c>), else DOTNET_HOST_PATH (set by the SDK for its children), else DOTNET_ROOT/dotnet,
    /// else dotnet on PATH.
    /// </summary>
    public static string DotnetHost()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        foreach (var candidate in new[]
                 {
                     Environment.GetEnvironmentVariable("DOTNET_HOST_PATH"),
                     Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root ? Path.Combine(root, "dotnet") : null,
                 })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
            {
                return candidate;
            }
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "dotnet");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("no dotnet host found (not this process, DOTNET_HOST_PATH, DOTNET_ROOT or PATH)");
    }

    private const int Sigterm = 15;
    private const int Sigcont = 18;
    private const int Sigstop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
