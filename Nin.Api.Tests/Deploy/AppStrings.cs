using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Nin.Api.Tests.Deploy;

/// <summary>The strings an assembly can ask configuration for: its string literals (#US heap) and string constants.</summary>
internal static class AppStrings
{
    public static IEnumerable<string> Of(Assembly assembly)
    {
        using var stream = File.OpenRead(assembly.Location);
        using var pe = new PEReader(stream);
        var reader = pe.GetMetadataReader();
        var result = new List<string>();
        var handle = MetadataTokens.UserStringHandle(1);
        while (!handle.IsNil)
        {
            result.Add(reader.GetUserString(handle));
            handle = reader.GetNextHandle(handle);
        }

        // Constants (SectionName, NinRole.Key) are metadata, not user strings.
        foreach (var field in assembly.GetTypes().SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)))
        {
            if (field is { IsLiteral: true } && field.FieldType == typeof(string) && field.GetRawConstantValue() is string s)
            {
                result.Add(s);
            }
        }

        return result;
    }
}
