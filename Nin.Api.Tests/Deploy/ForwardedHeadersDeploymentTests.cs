using System.Text.RegularExpressions;

namespace Nin.Api.Tests.Deploy;

/// <summary>
/// Forwarded headers in the shipped deployments: believed from the deployment's own proxy only (lb's fixed address in
/// compose, the ingress controller's network in Kubernetes, where a NetworkPolicy lets only it reach the api pods),
/// and never through ASPNETCORE_FORWARDEDHEADERS_ENABLED, which would believe them from anyone.
/// </summary>
[UnitTests]
public sealed partial class ForwardedHeadersDeploymentTests
{
    private static string Read(string file) => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, file)).Replace("\r\n", "\n");

    [Fact]
    public void No_deployment_file_turns_on_forwarded_headers_for_every_sender()
    {
        var files = new[] { "docker-compose.yml", "docker-compose.scale.yml", "docker-compose.gpu.yml", "Dockerfile" }
            .Concat(Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "deploy"), "*.yaml", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(TestPaths.RepoRoot, f)));
        foreach (var file in files)
        {
            Assert.DoesNotMatch(new Regex(@"^\s*-?\s*(name:\s*)?ASPNETCORE_FORWARDEDHEADERS_ENABLED", RegexOptions.Multiline), Read(file));
        }
    }

    [Fact]
    public void Compose_api_replicas_trust_lb_s_fixed_address_only()
    {
        var compose = Read("docker-compose.scale.yml");
        var lbAddress = LbAddress().Match(compose);
        Assert.True(lbAddress.Success, "lb has no fixed ipv4_address");
        var subnet = Subnet().Match(compose);
        Assert.True(subnet.Success, "the default network has no fixed subnet");
        Assert.True(System.Net.IPNetwork.Parse(subnet.Groups[1].Value).Contains(System.Net.IPAddress.Parse(lbAddress.Groups[1].Value)));
        Assert.Matches(new Regex($@"ForwardedHeaders__KnownNetworks__0:\s*""{Regex.Escape(lbAddress.Groups[1].Value)}/32"""), compose);
        Assert.DoesNotContain("ForwardedHeaders__", compose[..compose.IndexOf("\n  api:", StringComparison.Ordinal)].Split("services:")[0], StringComparison.Ordinal); // not in the shared x- block (workers take no traffic)

        // The single-container file trusts no one unless told (NIN_TRUSTED_PROXY).
        Assert.Matches(new Regex(@"ForwardedHeaders__KnownNetworks__0:\s*""\$\{NIN_TRUSTED_PROXY:-\}"""), Read("docker-compose.yml"));
    }

    [Fact]
    public void Kubernetes_api_pods_trust_the_ingress_network_behind_a_network_policy()
    {
        var api = Read("deploy/k8s/api.yaml");
        Assert.Matches(new Regex(@"- name: ForwardedHeaders__KnownNetworks__0\s*\n\s*value: ""\d+\.\d+\.\d+\.\d+/\d+"""), api);
        var policy = Read("deploy/k8s/network-policy.yaml");
        Assert.Contains("kind: NetworkPolicy", policy, StringComparison.Ordinal);
        Assert.Matches(new Regex(@"podSelector:\s*\n\s*matchLabels:\s*\n\s*app\.kubernetes\.io/name: nin-api"), policy);
        Assert.Contains("kubernetes.io/metadata.name: ingress-nginx", policy, StringComparison.Ordinal);
        Assert.Contains("- network-policy.yaml", Read("deploy/k8s/kustomization.yaml"), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"\n  lb:\n(?:    .*\n|\s*\n)*?\s+ipv4_address:\s*(\S+)")]
    private static partial Regex LbAddress();

    [GeneratedRegex(@"\nnetworks:\n(?:  .*\n)*?\s+- subnet:\s*(\S+)")]
    private static partial Regex Subnet();
}
