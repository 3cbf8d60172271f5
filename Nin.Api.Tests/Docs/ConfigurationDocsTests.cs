using System.Reflection;
using System.Text.RegularExpressions;

namespace Nin.Api.Tests.Docs;

/// <summary>
/// docs/configuration.md lists every setting: each settable property of every options class (a class with a
/// <c>SectionName</c> constant, bound from that configuration section) appears there as <c>`Section:Property`</c>, and
/// every <c>`Section:Property`</c> the page names exists. A new option without documentation, or documentation of a
/// removed one, fails here.
/// </summary>
[UnitTests]
public sealed partial class ConfigurationDocsTests
{
    private static readonly string Page = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "configuration.md"));

    /// <summary>Every <c>Section:Key</c> the options classes bind, from the classes themselves.</summary>
    public static IReadOnlyList<string> Settings { get; } = OptionsClasses()
        .SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && p.GetCustomAttribute<System.Text.Json.Serialization.JsonIgnoreAttribute>() is null)
            .Select(p => $"{t.GetField("SectionName")!.GetRawConstantValue()}:{p.Name}"))
        .Distinct().Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void Every_option_is_documented()
    {
        Assert.NotEmpty(Settings);
        var missing = Settings.Where(s => !Page.Contains($"`{s}`", StringComparison.Ordinal)).ToArray();
        Assert.True(missing.Length == 0, "docs/configuration.md does not list: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_documented_option_exists()
    {
        var sections = OptionsClasses().Select(t => (string)t.GetField("SectionName")!.GetRawConstantValue()!).ToHashSet(StringComparer.Ordinal);
        var stale = SettingPattern().Matches(Page).Select(m => m.Groups[1].Value)
            .Where(s => sections.Contains(s.Split(':')[0]) && !Settings.Contains(s))
            .Distinct().ToArray();
        Assert.True(stale.Length == 0, "docs/configuration.md names settings no options class has: " + string.Join(", ", stale));
    }

    private static IEnumerable<Type> OptionsClasses() =>
        new[] { typeof(Program).Assembly, typeof(Nin.Model.Runtime.TorchOptions).Assembly }
            .SelectMany(a => a.GetTypes())
            .Where(t => t.IsClass && !t.IsAbstract && t.GetField("SectionName", BindingFlags.Public | BindingFlags.Static) is { IsLiteral: true }
                && t.GetProperties().Any(p => p.SetMethod is { IsPublic: true }));

    [GeneratedRegex(@"`([A-Z][A-Za-z]+:[A-Z][A-Za-z0-9]+)`")]
    private static partial Regex SettingPattern();
}
