using System.Collections;
using Microsoft.Extensions.Configuration.Memory;

namespace Nin.Api.Infrastructure;

/// <summary>
/// The launcher's and container's <c>NIN_*</c> variables, mapped once into configuration at the lowest precedence:
/// <c>appsettings.json</c>, <c>Nin__*</c> variables, <c>--Nin:*</c> arguments (and the tests' settings) all win over them,
/// as ASP.NET Core's order has it; so a shell with <c>NIN_HOME</c> set no longer redirects an explicitly configured run.
/// </summary>
public static class NinEnvironment
{
    /// <summary>Variable → configuration key.</summary>
    public static IReadOnlyDictionary<string, string> Mappings { get; } = new Dictionary<string, string>
    {
        ["NIN_HOME"] = "Nin:Home",
        ["NIN_DATA_DIR"] = "Nin:DataDirectory",
        ["NIN_MODELS_DIR"] = "Nin:ModelsDirectory",
        ["NIN_WORK_DIR"] = "Nin:WorkDirectory",
        ["NIN_LIBTORCH_DIR"] = "Torch:LibTorchDirectory",
        ["NIN_ROLE"] = NinRole.Key,
    };

    /// <summary>Adds the variables of <paramref name="environment"/> (default: the process's) as the first, weakest source.</summary>
    public static IConfigurationBuilder AddNinEnvironmentDefaults(this IConfigurationBuilder configuration, IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        var values = new Dictionary<string, string?>();
        foreach (var (variable, key) in Mappings)
        {
            if (environment[variable] is string value && value.Length > 0)
            {
                values[key] = value;
            }
        }

        configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = values });
        return configuration;
    }
}
