using Xunit.Abstractions;
using Xunit.Sdk;

namespace Nin.Api.Tests.Categories;

/// <summary>
/// What a test needs, as the trait <c>Category</c>, so <c>dotnet test --filter Category=Unit</c> selects by need.
/// Every test class carries exactly one attribute (<c>[UnitTests]</c>, <c>[HostTests]</c>, <c>[ClusterTests]</c>, <c>[BrowserTests]</c>) (<see cref="CategoryGuardTests"/> fails otherwise); <c>./nin test</c> runs them all.
/// </summary>
public static class Category
{
    public const string Name = "Category";

    /// <summary>The .NET SDK alone (TorchSharp's natives included): no datasets, servers or browser.</summary>
    public const string Unit = nameof(Unit);

    /// <summary>The built-in datasets (<c>../shared/datasets</c> or <c>NIN_TEST_DATA_DIR</c>) and the service in the test host.</summary>
    public const string Host = nameof(Host);

    /// <summary>PostgreSQL and Redis (<c>NIN_TEST_POSTGRES</c>, <c>NIN_TEST_REDIS</c>), often real service processes.</summary>
    public const string Cluster = nameof(Cluster);

    /// <summary>Chromium (<c>NIN_CHROMIUM</c>, default <c>/usr/bin/chromium</c>) driven by Playwright.</summary>
    public const string Browser = nameof(Browser);

    public static IReadOnlyList<string> All { get; } = [Unit, Host, Cluster, Browser];
}

/// <summary>Needs nothing but the SDK: <see cref="Category.Unit"/>.</summary>
[TraitDiscoverer("Nin.Api.Tests.Categories.CategoryDiscoverer", "Nin.Api.Tests")]
[AttributeUsage(AttributeTargets.Class)]
public sealed class UnitTestsAttribute : Attribute, ITraitAttribute;

/// <summary>Needs the built-in datasets: <see cref="Category.Host"/>.</summary>
[TraitDiscoverer("Nin.Api.Tests.Categories.CategoryDiscoverer", "Nin.Api.Tests")]
[AttributeUsage(AttributeTargets.Class)]
public sealed class HostTestsAttribute : Attribute, ITraitAttribute;

/// <summary>Needs PostgreSQL and Redis: <see cref="Category.Cluster"/>.</summary>
[TraitDiscoverer("Nin.Api.Tests.Categories.CategoryDiscoverer", "Nin.Api.Tests")]
[AttributeUsage(AttributeTargets.Class)]
public sealed class ClusterTestsAttribute : Attribute, ITraitAttribute;

/// <summary>Needs Chromium: <see cref="Category.Browser"/>.</summary>
[TraitDiscoverer("Nin.Api.Tests.Categories.CategoryDiscoverer", "Nin.Api.Tests")]
[AttributeUsage(AttributeTargets.Class)]
public sealed class BrowserTestsAttribute : Attribute, ITraitAttribute;

/// <summary>Turns the category attributes into the trait <c>Category=Name</c> (<c>[UnitTests]</c> gives <c>Category=Unit</c>).</summary>
public sealed class CategoryDiscoverer : ITraitDiscoverer
{
    public IEnumerable<KeyValuePair<string, string>> GetTraits(IAttributeInfo traitAttribute)
    {
        var name = ((IReflectionAttributeInfo)traitAttribute).Attribute.GetType().Name;
        yield return new KeyValuePair<string, string>(Category.Name, name[..^"TestsAttribute".Length]);
    }
}
