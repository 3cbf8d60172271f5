using System.Reflection;
using System.Text.RegularExpressions;
using Nin.Api.Infrastructure;
using Nin.Model.Runtime;

namespace Nin.Api.Tests.Deploy;

/// <summary>
/// Keeps docker-compose.scale.yml, deploy/nginx/nin.conf and deploy/k8s in step with the app and with each other:
/// every setting they give a Nin container is one the app reads (an options property of a bound section, a key it
/// asks for by name, or a NIN_* variable), the roles are the ones the app knows, and the scale-out plumbing (Redis,
/// PostgreSQL, shared volumes, sticky hub routing, the required key) is there for every Nin service.
/// (tools/deploy/validate-k8s.sh checks the manifests' structure; tools/containers/scale-test.sh runs the compose file.)
/// </summary>
[UnitTests]
public sealed partial class ScaleOutDeploymentTests
{
    private const string ScaleFile = "docker-compose.scale.yml";
    private static readonly string[] NinServices = ["api", "worker", "worker-gpu"];

    /// <summary>Variables read by ASP.NET Core / .NET itself or by the NVIDIA Container Toolkit, not by Nin.</summary>
    private static readonly string[] PlatformVariables =
    [
        "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_URLS", "ASPNETCORE_ENVIRONMENT", "ASPNETCORE_FORWARDEDHEADERS_ENABLED", "DOTNET_ENVIRONMENT",
        "DOTNET_CLI_TELEMETRY_OPTOUT", "MALLOC_ARENA_MAX", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
    ];

    [Theory]
    [InlineData("api")]
    [InlineData("worker")]
    [InlineData("worker-gpu")]
    public void Every_variable_a_scale_service_gets_is_read_by_the_app(string service)
    {
        var env = ServiceEnvironment(service);
        Assert.True(env.Count >= 8, $"{service}: only {env.Count} variables found (the merge of x-nin-environment not read?)");
        foreach (var name in env.Keys)
        {
            AssertReadByTheApp(ScaleFile + " " + service, name);
        }
    }

    [Fact]
    public void Scale_services_share_postgres_redis_the_volumes_and_the_required_key()
    {
        var single = Read("docker-compose.yml");
        var singleConnection = Regex.Match(single, @"Hangfire__PostgresConnection:\s*""([^""]+)""").Groups[1].Value;
        Assert.Contains("Gss Encryption Mode=Disable", singleConnection, StringComparison.Ordinal);

        foreach (var service in NinServices)
        {
            var env = ServiceEnvironment(service);
            Assert.Equal(singleConnection, env["Hangfire__PostgresConnection"]);
            Assert.Equal("redis:6379", env["SignalR__Redis"]);
            Assert.Equal("/var/lib/nin", env["NIN_HOME"]);
            Assert.Matches(new Regex(@"^\$\{NIN_API_KEY:\?.+\}$"), env["Security__ApiKeys__0"]);
            Assert.Equal("true", env["Security__RequireApiKey"]);
            Assert.True(TimeSpan.TryParse(Regex.Match(env["Hangfire__InvisibilityTimeout"], @":-([0-9:]+)\}").Groups[1].Value, out var timeout) && timeout > TimeSpan.Zero,
                $"{service}: Hangfire__InvisibilityTimeout '{env["Hangfire__InvisibilityTimeout"]}' has no TimeSpan default");

            var block = Resolved(service);
            foreach (var sub in new[] { "models", "data", "work" })
            {
                Assert.Matches(new Regex($@"-\s*nin-{sub}:/var/lib/nin/{sub}\s*$", RegexOptions.Multiline), block);
            }

            Assert.Matches(new Regex(@"postgres:\s*\n\s*condition:\s*service_healthy"), block);
            Assert.Matches(new Regex(@"redis:\s*\n\s*condition:\s*service_healthy"), block);
            Assert.Contains("GET /health/ready ", block, StringComparison.Ordinal);
            Assert.DoesNotMatch(new Regex(@"^\s*ports:", RegexOptions.Multiline), block); // only the lb publishes
        }

        Assert.Equal(NinRole.Api.Name, ServiceEnvironment("api")["Nin__Role"]);
        Assert.Equal(NinRole.Worker.Name, ServiceEnvironment("worker")["Nin__Role"]);
        Assert.Equal(NinRole.Worker.Name, ServiceEnvironment("worker-gpu")["Nin__Role"]);
        Assert.Equal("cuda", ServiceEnvironment("worker-gpu")["Torch__Device"]);
        Assert.Matches(new Regex(@"TORCH_BACKEND:\s*cuda-linux"), ServiceBlock("worker-gpu"));
        Assert.Matches(new Regex(@"profiles:\s*\[gpu\]"), ServiceBlock("worker-gpu"));
        Assert.Matches(new Regex(@"driver:\s*nvidia"), ServiceBlock("worker-gpu"));
        foreach (var backing in new[] { "postgres", "redis" })
        {
            Assert.Contains("healthcheck:", ServiceBlock(backing), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_load_balancer_publishes_the_port_and_routes_hubs_sticky_and_rest_round_robin()
    {
        var lb = ServiceBlock("lb");
        Assert.Matches(new Regex(@"-\s*""\$\{NIN_PORT:-8080\}:8080""\s*$", RegexOptions.Multiline), lb);
        var mount = Regex.Match(lb, @"-\s*\./(deploy/nginx/[^:]+):/etc/nginx/conf\.d/default\.conf:ro");
        Assert.True(mount.Success, "the lb mounts no nginx config from deploy/nginx over conf.d/default.conf");

        var conf = Read(mount.Groups[1].Value);
        Assert.Matches(new Regex(@"^\s*listen 8080;", RegexOptions.Multiline), conf);
        var upstreams = Regex.Matches(conf, @"upstream (\w+) \{([^}]*)\}").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var hubs = Regex.Match(conf, @"location /hubs/ \{([^}]*)\}").Groups[1].Value;
        var rest = Regex.Match(conf, @"location / \{([^}]*)\}").Groups[1].Value;
        var hubUpstream = Regex.Match(hubs, @"proxy_pass http://(\w+);").Groups[1].Value;
        var restUpstream = Regex.Match(rest, @"proxy_pass http://(\w+);").Groups[1].Value;

        // The hub's requests stay on one replica (client-address hash), with the WebSocket upgrade and long timeouts.
        Assert.Matches(new Regex(@"^\s*(ip_hash;|hash \$remote_addr( consistent)?;)", RegexOptions.Multiline), upstreams[hubUpstream]);
        Assert.Contains("server api:8080;", upstreams[hubUpstream], StringComparison.Ordinal);
        Assert.Contains("proxy_set_header Upgrade $http_upgrade;", hubs, StringComparison.Ordinal);
        Assert.Matches(new Regex(@"proxy_read_timeout (\d+)h;"), hubs);

        // REST: the same replicas, no affinity.
        Assert.NotEqual(hubUpstream, restUpstream);
        Assert.Contains("server api:8080;", upstreams[restUpstream], StringComparison.Ordinal);
        Assert.DoesNotMatch(new Regex(@"ip_hash|hash "), upstreams[restUpstream]);

        // Every location that sets headers passes the original Host (nginx inherits none into a level that sets its own).
        Assert.Contains("proxy_set_header Host $http_host;", hubs, StringComparison.Ordinal);
        Assert.Contains("proxy_set_header Host $http_host;", rest, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_setting_the_kubernetes_manifests_give_nin_is_read_by_the_app()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "deploy", "k8s");
        var names = new HashSet<string>(StringComparer.Ordinal);

        // ConfigMap data and Secret stringData keys in config.yaml (two-space indented KEY: value under them).
        var config = Read("deploy/k8s/config.yaml").Replace("\r\n", "\n");
        foreach (Match block in Regex.Matches(config, @"^(?:data|stringData):\n((?:(?:  .*|\s*#.*)?\n)+)", RegexOptions.Multiline))
        {
            foreach (Match key in Regex.Matches(block.Groups[1].Value, @"^  ([A-Za-z_][A-Za-z0-9_]*):", RegexOptions.Multiline))
            {
                names.Add(key.Groups[1].Value);
            }
        }

        // Container env names (those shaped like settings) in every manifest.
        foreach (var file in Directory.EnumerateFiles(dir, "*.yaml", SearchOption.AllDirectories))
        {
            foreach (Match m in Regex.Matches(File.ReadAllText(file), @"^\s*- name: ([A-Za-z_][A-Za-z0-9]*__[A-Za-z0-9_]+|NIN_[A-Z0-9_]+)\s*$", RegexOptions.Multiline))
            {
                names.Add(m.Groups[1].Value);
            }
        }

        foreach (var required in new[] { "Hangfire__PostgresConnection", "Hangfire__InvisibilityTimeout", "SignalR__Redis", "Security__ApiKeys__0", "Security__RequireApiKey", "NIN_HOME", "Nin__Role" })
        {
            Assert.Contains(required, names);
        }

        foreach (var name in names)
        {
            AssertReadByTheApp("deploy/k8s", name);
        }

        var roles = Regex.Matches(string.Join('\n', Directory.EnumerateFiles(dir, "*.yaml").Select(File.ReadAllText)), @"- name: Nin__Role\s*\n\s*value: (\S+)")
            .Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(new HashSet<string> { NinRole.Api.Name, NinRole.Worker.Name }, roles);
    }

    [Fact]
    public void The_name_check_rejects_what_the_app_does_not_read()
    {
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertReadByTheApp("test", "SignalR__Rediss"));
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertReadByTheApp("test", "Nin__Rolle"));
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertReadByTheApp("test", "NIN_NOTHING"));
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertReadByTheApp("test", "Nowhere__Redis"));
        AssertReadByTheApp("test", "SharedState__Schema");
        AssertReadByTheApp("test", "Nin__Role");
    }

    // ------------------------------------------------------------------ the app's setting names

    private static readonly Lazy<Dictionary<string, Type>> Sections = new(() =>
        new[] { typeof(NinOptions).Assembly, typeof(TorchOptions).Assembly }
            .SelectMany(a => a.GetTypes())
            .Select(t => (Type: t, Field: t.GetField("SectionName", BindingFlags.Public | BindingFlags.Static)))
            .Where(x => x.Field is { IsLiteral: true } && x.Field.FieldType == typeof(string))
            .GroupBy(x => (string)x.Field!.GetRawConstantValue()!, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => g.First().Type, StringComparer.OrdinalIgnoreCase));

    private static readonly Lazy<HashSet<string>> Literals = new(() =>
        AppStrings.Of(typeof(NinOptions).Assembly).Concat(AppStrings.Of(typeof(TorchOptions).Assembly)).ToHashSet(StringComparer.Ordinal));

    /// <summary>
    /// A setting the app reads: Section__Property of a class bound by its SectionName (Section__List__N for a list), a
    /// configuration key the code asks for by name (Nin:Role), or a NIN_* variable it reads.
    /// </summary>
    private static void AssertReadByTheApp(string where, string name)
    {
        if (PlatformVariables.Contains(name, StringComparer.Ordinal))
        {
            return;
        }

        if (!name.Contains("__", StringComparison.Ordinal))
        {
            Assert.True(Regex.IsMatch(name, "^NIN_[A-Z0-9_]+$") && Literals.Value.Contains(name), $"{where}: {name} is not read anywhere in Nin.Api or Nin.Model.");
            return;
        }

        if (Literals.Value.Contains(name.Replace("__", ":", StringComparison.Ordinal)))
        {
            return; // asked for by its key, e.g. NinRole.Key
        }

        var parts = name.Split("__");
        var indexed = parts.Length == 3 && int.TryParse(parts[2], out _);
        Assert.True(parts.Length == 2 || indexed, $"{where}: {name} is nested deeper than Section__Property (or Section__List__N).");
        Assert.True(Sections.Value.TryGetValue(parts[0], out var type), $"{where}: {name}: no options class binds section '{parts[0]}'.");
        var property = type!.GetProperty(parts[1], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        Assert.True(property is { CanWrite: true }, $"{where}: {name}: {type.Name} has no settable property '{parts[1]}'.");
        Assert.True(!indexed || typeof(System.Collections.IList).IsAssignableFrom(property!.PropertyType), $"{where}: {name}: {type.Name}.{parts[1]} is not a list.");
    }

    // ------------------------------------------------------------------ the compose file

    private static string Read(string file) => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, file)).Replace("\r\n", "\n");

    /// <summary>The lines of one service under <c>services:</c>, up to the next service or top-level key.</summary>
    private static string ServiceBlock(string service) => Block(Read(ScaleFile), $"  {service}:", "   ", after: "services:");

    /// <summary>A key's indented lines (a service's: after <c>services:</c>, not a same-named key in an x- block).</summary>
    private static string Block(string text, string header, string indent, string? after = null)
    {
        var lines = text.Split('\n');
        var from = after is null ? 0 : Array.IndexOf(lines, after);
        Assert.True(from >= 0, $"'{after}' not found in {ScaleFile}");
        var start = Array.FindIndex(lines, from, l => l == header || l.StartsWith(header + " ", StringComparison.Ordinal));
        Assert.True(start >= 0, $"'{header.Trim()}' not found in {ScaleFile}");
        return string.Join('\n', lines.Skip(start + 1).TakeWhile(l => l.Length == 0 || l.StartsWith(indent, StringComparison.Ordinal) || l.TrimStart().StartsWith('#')));
    }

    /// <summary>The service block with YAML aliases (<c>key: *anchor</c>) replaced by the anchored top-level blocks.</summary>
    private static string Resolved(string service)
    {
        var text = Read(ScaleFile);
        return AliasUse().Replace(ServiceBlock(service), m =>
        {
            var anchor = Regex.Match(text, $@"^(x-[\w-]+): &{Regex.Escape(m.Groups[2].Value)}\s*$", RegexOptions.Multiline);
            Assert.True(anchor.Success, $"anchor &{m.Groups[2].Value} not found");
            return m.Groups[1].Value + ":\n" + Block(text, anchor.Groups[1].Value + ":", "  ");
        });
    }

    /// <summary>A service's environment: its own KEY: value entries over those merged in with <c>&lt;&lt;: *anchor</c>.</summary>
    private static Dictionary<string, string> ServiceEnvironment(string service)
    {
        var text = Read(ScaleFile);
        var lines = ServiceBlock(service).Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd() == "    environment:");
        Assert.True(start >= 0, $"{service} has no environment mapping");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var own = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(start + 1))
        {
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var merge = Regex.Match(line, @"^      <<: \*([\w-]+)\s*$");
            if (merge.Success)
            {
                var anchor = Regex.Match(text, $@"^(x-[\w-]+): &{Regex.Escape(merge.Groups[1].Value)}\s*$", RegexOptions.Multiline);
                Assert.True(anchor.Success, $"anchor &{merge.Groups[1].Value} not found");
                foreach (var entry in Block(text, anchor.Groups[1].Value + ":", "  ").Split('\n'))
                {
                    var m = Regex.Match(entry, @"^  ([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$");
                    if (m.Success)
                    {
                        result[m.Groups[1].Value] = m.Groups[2].Value.Trim().Trim('"');
                    }
                }

                continue;
            }

            var kv = Regex.Match(line, @"^      ([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$");
            if (!kv.Success)
            {
                Assert.False(line.StartsWith("      ", StringComparison.Ordinal), $"{service}: unreadable environment line '{line}' (use KEY: value)");
                break;
            }

            own[kv.Groups[1].Value] = kv.Groups[2].Value.Trim().Trim('"');
        }

        foreach (var (k, v) in own)
        {
            result[k] = v; // a service's own entries win over merged ones, as in YAML
        }

        return result;
    }

    [GeneratedRegex(@"^(\s+[\w-]+): \*([\w-]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex AliasUse();
}
