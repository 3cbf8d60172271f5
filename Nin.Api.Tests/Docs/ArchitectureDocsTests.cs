using System.Text.RegularExpressions;

namespace Nin.Api.Tests.Docs;

/// <summary>
/// docs/architecture.md draws the request and training flows with the names of the types that do each step; every
/// <c>`TypeName`</c> in its "The two flows" section must be a type of Nin.Api or Nin.Model, so a rename or a removal
/// that leaves the diagram behind fails here.
/// </summary>
[UnitTests]
public sealed partial class ArchitectureDocsTests
{
    [Fact]
    public void Every_type_the_flow_diagrams_name_exists()
    {
        var page = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "architecture.md"));
        var start = page.IndexOf("## The two flows", StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/architecture.md has no '## The two flows' section");
        var flows = page[start..];

        var named = TypeName().Matches(flows).Select(m => m.Groups[1].Value).Distinct(StringComparer.Ordinal).ToArray();
        Assert.True(named.Length >= 20, $"the flow diagrams name only {named.Length} types: {string.Join(", ", named)}");

        var known = new[] { typeof(Program).Assembly, typeof(Nin.Model.Checkpoints.ModelStore).Assembly }
            .SelectMany(a => a.GetTypes())
            .Select(t => t.Name.Split('`')[0])
            .ToHashSet(StringComparer.Ordinal);
        var missing = named.Where(n => !known.Contains(n)).ToArray();
        Assert.True(missing.Length == 0, "docs/architecture.md's flows name types that do not exist: " + string.Join(", ", missing));
    }

    /// <summary>A backticked PascalCase identifier (`ModelRegistry`, `IModelRunner`), not a route or a setting.</summary>
    [GeneratedRegex(@"`([A-Z][A-Za-z0-9]+)`")]
    private static partial Regex TypeName();
}
