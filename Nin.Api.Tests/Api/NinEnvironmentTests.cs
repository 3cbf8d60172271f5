using System.Collections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Checkpoints;

namespace Nin.Api.Tests.Api;

/// <summary>Tests that set process environment variables run alone: no other service starts while they are set.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    public const string Name = "process-environment";
}

/// <summary><c>NIN_*</c> variables are the weakest source: every explicit setting wins over them.</summary>
[Collection(EnvironmentCollection.Name)]
[UnitTests]
public sealed class NinEnvironmentTests
{
    [Fact]
    public void Command_line_and_settings_win_over_NIN_variables_which_win_over_nothing()
    {
        var environment = new Hashtable
        {
            ["NIN_HOME"] = "/env/home",
            ["NIN_MODELS_DIR"] = "/env/models",
            ["NIN_WORK_DIR"] = "/env/work",
            ["NIN_DATA_DIR"] = "",
        };
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Nin:DataDirectory"] = "/settings/data" });
        configuration.AddCommandLine(["--Nin:ModelsDirectory=/cli/models"]);
        configuration.AddNinEnvironmentDefaults(environment);

        Assert.Equal("/cli/models", configuration["Nin:ModelsDirectory"]);
        Assert.Equal("/settings/data", configuration["Nin:DataDirectory"]);
        Assert.Equal("/env/work", configuration["Nin:WorkDirectory"]);
        Assert.Equal("/env/home", configuration["Nin:Home"]);
    }

    [Fact]
    public void The_service_takes_its_folders_from_its_settings_even_with_NIN_variables_set()
    {
        var root = Directory.CreateTempSubdirectory("nin-env-").FullName;
        var saved = NinEnvironment.Mappings.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable("NIN_HOME", Path.Combine(root, "env-home"));
            Environment.SetEnvironmentVariable("NIN_MODELS_DIR", Path.Combine(root, "env-models"));
            Environment.SetEnvironmentVariable("NIN_WORK_DIR", Path.Combine(root, "env-work"));
            var explicitModels = Path.Combine(root, "explicit-models");
            using var factory = new NinApiFactory(new Dictionary<string, string?>
            {
                ["Nin:SeedDefaultModel"] = "false",
                ["Nin:ModelsDirectory"] = explicitModels,
            });

            var options = factory.Services.GetRequiredService<IOptions<NinOptions>>().Value;
            Assert.Equal(factory.Home, options.ResolvedHome); // the tests' UseSetting, not NIN_HOME
            Assert.Equal(explicitModels, options.ResolvedModelsDirectory);
            Assert.Equal(explicitModels, factory.Services.GetRequiredService<ModelStore>().Root);
            Assert.Equal(Path.Combine(root, "env-work"), options.ResolvedWorkDirectory); // nothing explicit: the variable applies
            Assert.False(Directory.Exists(Path.Combine(root, "env-models")));
        }
        finally
        {
            foreach (var (name, value) in saved)
            {
                Environment.SetEnvironmentVariable(name, value);
            }

            Directory.Delete(root, recursive: true);
        }
    }
}
