using System.Diagnostics;

namespace Nin.Api.Tests.Deploy;

/// <summary>Transitive packages with known vulnerabilities are pinned to fixed releases.</summary>
[UnitTests]
public sealed class DependencyPinTests
{
    [Fact]
    public void Newtonsoft_json_is_13_0_3_or_newer_cve_2024_21907()
    {
        // Hangfire.Core alone would bring 11.0.1; the service's own reference (Directory.Packages.props) lifts it.
        var file = FileVersionInfo.GetVersionInfo(typeof(Newtonsoft.Json.JsonConvert).Assembly.Location);
        var version = new Version(file.FileMajorPart, file.FileMinorPart, file.FileBuildPart);
        Assert.True(version >= new Version(13, 0, 3), $"Newtonsoft.Json {version} is loaded");
        Assert.Equal(
            typeof(Newtonsoft.Json.JsonConvert).Assembly.Location,
            AppDomain.CurrentDomain.GetAssemblies().Single(a => a.GetName().Name == "Newtonsoft.Json").Location);
    }
}
