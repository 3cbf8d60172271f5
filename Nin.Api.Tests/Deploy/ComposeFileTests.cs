using System.Reflection;
using System.Text.RegularExpressions;
using Nin.Api.Infrastructure;
using Nin.Api.Security;
using Nin.Api.Serving;
using Nin.Model.Runtime;

namespace Nin.Api.Tests.Deploy;

/// <summary>
/// Keeps Dockerfile, docker-compose.yml and docker-compose.gpu.yml in step with the app: every environment
/// variable they set must be one the app reads (an options property, or a NIN_* name the code asks for), and
/// the health check and port must match what the image serves. Renaming an option fails here.
/// </summary>
[UnitTests]
public sealed partial class ComposeFileTests
{
    /// <summary>Variables read by ASP.NET Core / .NET itself or by the NVIDIA Container Toolkit, not by Nin.</summary>
    private static readonly string[] PlatformVariables =
    [
        "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_URLS", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT",
        "DOTNET_CLI_TELEMETRY_OPTOUT", "MALLOC_ARENA_MAX", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
    ];

    /// <summary>Configuration sections the app binds, by their SectionName constants.</summary>
    private static readonly Dictionary<string, Type> Sections = new(StringComparer.OrdinalIgnoreCase)
    {
        [NinOptions.SectionName] = typeof(NinOptions),
        [HangfireOptions.SectionName] = typeof(HangfireOptions),
        [ServingOptions.SectionName] = typeof(ServingOptions),
        [TorchOptions.SectionName] = typeof(TorchOptions),
        [SecurityOptions.SectionName] = typeof(SecurityOptions),
        [ProxyOptions.SectionName] = typeof(ProxyOptions),
    };

    [Fact]
    public void Compose_api_sets_the_expected_variables()
    {
        var env = ApiEnvironment("docker-compose.yml");
        Assert.Contains("Hangfire__PostgresConnection", env.Keys);
        Assert.Contains("Host=postgres;", env["Hangfire__PostgresConnection"], StringComparison.Ordinal);
        Assert.Contains("NIN_HOME", env.Keys);
        Assert.Contains("Gss Encryption Mode=Disable", env["Hangfire__PostgresConnection"], StringComparison.Ordinal);
        // Safe by default: compose refuses to start without a key, and so does the app.
        Assert.Matches(new Regex(@"^\$\{NIN_API_KEY:\?.+\}$"), env["Security__ApiKeys__0"]);
        Assert.Equal("true", env["Security__RequireApiKey"]);
        Assert.Equal("cuda", ApiEnvironment("docker-compose.gpu.yml")["Torch__Device"]);
    }

    [Theory]
    [InlineData("docker-compose.yml")]
    [InlineData("docker-compose.gpu.yml")]
    [InlineData("Dockerfile")]
    public void Every_variable_set_for_the_api_is_read_by_the_app(string file)
    {
        var names = file == "Dockerfile" ? DockerfileEnvironment().Keys : ApiEnvironment(file).Keys;
        Assert.NotEmpty(names);
        var ninNames = AppStrings.Of(typeof(NinOptions).Assembly)
            .Concat(AppStrings.Of(typeof(TorchOptions).Assembly))
            .Where(s => Regex.IsMatch(s, "^NIN_[A-Z0-9_]+$"))
            .ToHashSet(StringComparer.Ordinal);
        Assert.Contains("NIN_HOME", ninNames); // the scan itself works

        foreach (var name in names)
        {
            if (PlatformVariables.Contains(name, StringComparer.Ordinal))
            {
                continue;
            }

            if (name.Contains("__", StringComparison.Ordinal))
            {
                var parts = name.Split("__");
                var indexed = parts.Length == 3 && int.TryParse(parts[2], out _); // Section__ListProperty__0
                Assert.True(parts.Length == 2 || indexed, $"{file}: {name} is nested deeper than Section__Property (or Section__List__N).");
                Assert.True(Sections.TryGetValue(parts[0], out var type), $"{file}: {name}: no options class binds section '{parts[0]}'.");
                var property = type!.GetProperty(parts[1], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
                Assert.True(property is { CanWrite: true }, $"{file}: {name}: {type.Name} has no settable property '{parts[1]}'.");
                Assert.True(!indexed || typeof(System.Collections.IList).IsAssignableFrom(property!.PropertyType), $"{file}: {name}: {type.Name}.{parts[1]} is not a list.");
            }
            else
            {
                Assert.True(ninNames.Contains(name), $"{file}: {name} is not read anywhere in Nin.Api or Nin.Model (known: {string.Join(", ", ninNames)}).");
            }
        }
    }

    [Fact]
    public void Healthcheck_probes_readiness_on_the_published_port()
    {
        var compose = Read("docker-compose.yml");
        var api = ServiceBlock(compose, "api");
        var port = DockerfileEnvironment()["ASPNETCORE_HTTP_PORTS"];

        Assert.Matches(new Regex($@"^\s*EXPOSE\s+{port}\s*$", RegexOptions.Multiline), Read("Dockerfile"));
        Assert.Matches(new Regex($@"-\s*""?(\d+|\$\{{NIN_PORT:-\d+\}}):{port}""?\s*$", RegexOptions.Multiline), api);
        Assert.Contains($"/dev/tcp/127.0.0.1/{port}", api, StringComparison.Ordinal);
        Assert.Contains("GET /health/ready ", api, StringComparison.Ordinal);
        Assert.Matches(new Regex(@"condition:\s*service_healthy"), api);
    }

    [Fact]
    public void Volumes_are_the_stores_under_NIN_HOME()
    {
        var home = DockerfileEnvironment()["NIN_HOME"];
        Assert.Equal(home, ApiEnvironment("docker-compose.yml")["NIN_HOME"]);
        var options = new NinOptions { Home = home };
        var api = ServiceBlock(Read("docker-compose.yml"), "api");
        var dockerfile = Read("Dockerfile");

        // Without NIN_*_DIR overrides the stores default to {Home}/data, {Home}/models and {Home}/work.
        foreach (var sub in new[] { "models", "data", "work" })
        {
            var dir = $"{home}/{sub}";
            Assert.Contains($"\"{dir}\"", dockerfile, StringComparison.Ordinal);
            Assert.Matches(new Regex($@"-\s*nin-{sub}:{Regex.Escape(dir)}\s*$", RegexOptions.Multiline), api);
        }

        if (Environment.GetEnvironmentVariable("NIN_HOME") is null && Environment.GetEnvironmentVariable("NIN_MODELS_DIR") is null)
        {
            Assert.Equal(Path.GetFullPath($"{home}/models"), options.ResolvedModelsDirectory);
        }
    }

    [Fact]
    public void Dockerfile_passes_the_torch_backend_to_msbuild()
    {
        var dockerfile = Read("Dockerfile");
        Assert.Matches(new Regex(@"^ARG TORCH_BACKEND=cpu\s*$", RegexOptions.Multiline), dockerfile);
        Assert.Equal(2, Regex.Matches(dockerfile, @"-p:TorchBackend=\$\{TORCH_BACKEND\}").Count); // restore and publish
        Assert.Matches(new Regex(@"TORCH_BACKEND:\s*cuda-linux"), Read("docker-compose.gpu.yml"));
    }

    // ------------------------------------------------------------------ helpers

    private static string Read(string file) => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, file));

    /// <summary>The lines of one service under <c>services:</c>, up to the next service or top-level key.</summary>
    private static string ServiceBlock(string compose, string service)
    {
        var lines = compose.Replace("\r\n", "\n").Split('\n');
        var start = Array.FindIndex(lines, l => l == $"  {service}:");
        Assert.True(start >= 0, $"service '{service}' not found");
        var block = lines.Skip(start + 1).TakeWhile(l => l.Length == 0 || l.StartsWith("   ", StringComparison.Ordinal) || l.TrimStart().StartsWith('#'));
        return string.Join('\n', block);
    }

    /// <summary>The api service's <c>environment:</c> mapping (KEY: value form).</summary>
    private static Dictionary<string, string> ApiEnvironment(string file)
    {
        var lines = ServiceBlock(Read(file), "api").Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd() == "    environment:");
        Assert.True(start >= 0, $"{file}: api has no environment mapping");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(start + 1))
        {
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var m = EnvEntry().Match(line);
            if (!m.Success)
            {
                Assert.False(line.StartsWith("      ", StringComparison.Ordinal), $"{file}: unreadable environment line '{line}' (use KEY: value)");
                break;
            }

            result[m.Groups[1].Value] = m.Groups[2].Value.Trim().Trim('"');
        }

        return result;
    }

    /// <summary>Variables set by ENV in the Dockerfile (KEY=value form, with line continuations).</summary>
    private static Dictionary<string, string> DockerfileEnvironment()
    {
        var text = Regex.Replace(Read("Dockerfile"), @"\\\r?\n", " ");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match env in Regex.Matches(text, @"^ENV\s+(.+)$", RegexOptions.Multiline))
        {
            foreach (Match kv in Regex.Matches(env.Groups[1].Value, @"([A-Za-z_][A-Za-z0-9_]*)=(\S+)"))
            {
                result[kv.Groups[1].Value] = kv.Groups[2].Value;
            }
        }

        return result;
    }

    [GeneratedRegex(@"^      ([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$")]
    private static partial Regex EnvEntry();
}
