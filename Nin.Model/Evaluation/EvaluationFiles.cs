using System.Text.Json;
using Nin.Model.Checkpoints;

namespace Nin.Model.Evaluation;

/// <summary>
/// <c>evaluation.json</c> and <c>predictions.json</c> beside a version's weights. Each file is written to a temporary
/// name, flushed to the disk and renamed over the old one; predictions first, so an evaluation on disk always has its
/// predictions.
/// </summary>
public static class EvaluationFiles
{
    public const string EvaluationFile = "evaluation.json";
    public const string PredictionsFile = "predictions.json";

    private static readonly JsonSerializerOptions Compact = new(ModelMetadata.JsonOptions) { WriteIndented = false };

    public static void Save(string versionDirectory, ModelEvaluation evaluation, TestPredictions predictions)
    {
        if (!Directory.Exists(versionDirectory))
        {
            throw new DirectoryNotFoundException("The model version was deleted before its evaluation was stored.");
        }

        Write(Path.Combine(versionDirectory, PredictionsFile), JsonSerializer.Serialize(predictions, Compact));
        Write(Path.Combine(versionDirectory, EvaluationFile), JsonSerializer.Serialize(evaluation, ModelMetadata.JsonOptions));
    }

    public static ModelEvaluation? ReadEvaluation(string versionDirectory) => Read<ModelEvaluation>(Path.Combine(versionDirectory, EvaluationFile));

    public static TestPredictions? ReadPredictions(string versionDirectory) => Read<TestPredictions>(Path.Combine(versionDirectory, PredictionsFile));

    private static T? Read<T>(string path)
        where T : class
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<T>(File.ReadAllText(path), ModelMetadata.JsonOptions) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    private static void Write(string path, string text) => DurableFile.WriteText(path, text); // temp, fsync, rename
}
