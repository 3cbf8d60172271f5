using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Nin.Api.Models;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Training;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Nin.Api.OpenApi;

/// <summary>
/// The rules the server enforces on request bodies, in their schemas, read from the same definitions the validators use
/// (<see cref="TrainRequestValidator"/>'s limits, the recipe, architecture and schedule registries, the model-name
/// pattern, the import's accepted values), so a generated client or a fuzzer knows what a 400 is for.
/// </summary>
internal sealed class RulesSchemaFilter : ISchemaFilter
{
    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is not OpenApiSchema { Properties: { } properties } s)
        {
            return;
        }

        if (context.Type == typeof(TrainRequest))
        {
            Train(properties);
        }
        else if (context.Type == typeof(ModelTransferApi.ImportForm))
        {
            Import(s, properties);
        }
    }

    private static void Train(IDictionary<string, IOpenApiSchema> p)
    {
        Enum(p, "recipe", TrainingRecipes.Names);
        Enum(p, "architecture", NetworkArchitectures.Names);
        Enum(p, "schedule", LearningRateSchedules.Names);
        Range(p, "epochs", 1, TrainRequestValidator.MaxEpochs);
        Range(p, "batchSize", 1, TrainRequestValidator.MaxBatchSize);
        Range(p, "learningRate", 0, TrainRequestValidator.MaxLearningRate, exclusiveMinimum: true);
        Range(p, "momentum", 0, TrainRequestValidator.MaxMomentum, exclusiveMaximum: true);
        Range(p, "weightDecay", 0, TrainRequestValidator.MaxWeightDecay);
        Range(p, "shift", 0, TrainRequestValidator.MaxShift);
        Range(p, "labelSmoothing", 0, TrainRequestValidator.MaxLabelSmoothing);
        Range(p, "imageSize", NetworkArchitectures.All.Min(a => a.MinInputSize), NetworkArchitectures.All.Max(a => a.MaxInputSize));
        Range(p, "maxTrainImages", 1, null);
        Range(p, "maxTestImages", 1, null);
        Pattern(p, "modelName", ModelStore.NamePatternText);
        Pattern(p, "device", "^(auto|cpu|cuda(:[0-9]+)?)$");
    }

    private static void Import(OpenApiSchema schema, IDictionary<string, IOpenApiSchema> p)
    {
        schema.Required = new HashSet<string> { "weights", "classes" };
        Describe(p, "weights", "The weights file: `.pt`/`.pth` (`torch.save(net.state_dict())` of d2l's NiN) or `.safetensors`, at most 256 MiB.");
        Describe(p, "classes", "A JSON array of at least two distinct, non-empty class names, in the order of the network's outputs.");
        var importable = NetworkArchitectures.All.Where(a => a.PyTorchWeights).ToArray();
        Range(p, "imageSize", importable.Min(a => a.MinInputSize), importable.Max(a => a.MaxInputSize));
        Range(p, "nativeSize", 1, importable.Max(a => a.MaxInputSize));
        Enum(p, "channels", [1, 3]);
        Enum(p, "architecture", importable.Select(a => a.Name));
        Enum(p, "foreground", [Foregrounds.LightOnDark, Foregrounds.DarkOnLight, Foregrounds.None]);
    }

    private static void Range(IDictionary<string, IOpenApiSchema> p, string name, double minimum, double? maximum, bool exclusiveMinimum = false, bool exclusiveMaximum = false)
    {
        if (p.TryGetValue(name, out var value) && value is OpenApiSchema s)
        {
            // ExclusiveMinimum/-Maximum hold the bound itself (JSON Schema 2020-12); the 3.0 writer turns them into
            // minimum/maximum with exclusiveMinimum/-Maximum: true.
            var low = minimum.ToString(CultureInfo.InvariantCulture);
            var high = maximum?.ToString(CultureInfo.InvariantCulture);
            s.Minimum = exclusiveMinimum ? null : low;
            s.ExclusiveMinimum = exclusiveMinimum ? low : null;
            s.Maximum = exclusiveMaximum ? null : high;
            s.ExclusiveMaximum = exclusiveMaximum ? high : null;
        }
    }

    private static void Enum<T>(IDictionary<string, IOpenApiSchema> p, string name, IEnumerable<T> values)
    {
        if (p.TryGetValue(name, out var value) && value is OpenApiSchema s)
        {
            s.Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v)!)];
        }
    }

    private static void Pattern(IDictionary<string, IOpenApiSchema> p, string name, string pattern)
    {
        if (p.TryGetValue(name, out var value) && value is OpenApiSchema s)
        {
            s.Pattern = pattern;
        }
    }

    private static void Describe(IDictionary<string, IOpenApiSchema> p, string name, string description)
    {
        if (p.TryGetValue(name, out var value) && value is OpenApiSchema s)
        {
            s.Description ??= description;
        }
    }
}
