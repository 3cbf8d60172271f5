using System.Reflection;
using Xunit.Sdk;

namespace Nin.Api.Tests.Categories;

/// <summary>
/// Every test class says what it needs, so a filter by category never silently drops a test: a new class without a
/// category, or with two, fails here.
/// </summary>
[UnitTests]
public sealed class CategoryGuardTests
{
    [Fact]
    public void Every_test_class_has_exactly_one_category()
    {
        var testClasses = typeof(CategoryGuardTests).Assembly.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && t.GetMethods().Any(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any()));
        var wrong = testClasses
            .Select(t => (Type: t, Categories: t.GetCustomAttributes(inherit: true).OfType<ITraitAttribute>()
                .Where(a => a.GetType().Namespace == typeof(Category).Namespace).Select(a => a.GetType().Name).ToArray()))
            .Where(c => c.Categories.Length != 1)
            .Select(c => $"{c.Type.FullName}: {(c.Categories.Length == 0 ? "no category" : string.Join(", ", c.Categories))}")
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.True(wrong.Length == 0,
            $"Each test class needs exactly one of [{string.Join("Tests], [", Category.All)}Tests] (Nin.Api.Tests.Categories):\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void The_discoverer_names_the_trait_after_the_attribute()
    {
        var unit = typeof(CategoryGuardTests).GetCustomAttributesData().Single(a => a.AttributeType == typeof(UnitTestsAttribute));
        var traits = new CategoryDiscoverer().GetTraits(Reflector.Wrap(unit)).ToArray();
        Assert.Equal([new KeyValuePair<string, string>(Category.Name, Category.Unit)], traits);
    }
}
