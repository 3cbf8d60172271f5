namespace Nin.Api.Infrastructure;

/// <summary>
/// Where the service keeps its files. Bound from the <c>Nin</c> section; the environment variables
/// <c>NIN_HOME</c>, <c>NIN_DATA_DIR</c>, <c>NIN_MODELS_DIR</c> and <c>NIN_WORK_DIR</c> feed it at the lowest
/// precedence (<see cref="NinEnvironment"/>), so any explicit setting wins over them.
/// Relative paths resolve against the directory the service was started from.
/// </summary>
public sealed class NinOptions
{
    public const string SectionName = "Nin";

    /// <summary>Base folder for the defaults below (default: the current directory).</summary>
    public string? Home { get; set; }

    /// <summary>Datasets: built-in ones in <c>{DataDirectory}/{name}/</c> as IDX files (default <c>{Home}/data</c>).</summary>
    public string? DataDirectory { get; set; }

    /// <summary>The model store (default <c>{Home}/models</c>).</summary>
    public string? ModelsDirectory { get; set; }

    /// <summary>Job records and epoch checkpoints (default <c>{Home}/work</c>).</summary>
    public string? WorkDirectory { get; set; }

    /// <summary>What this process runs: <c>all</c> (default), <c>api</c> or <c>worker</c> (<see cref="NinRole"/>).</summary>
    public string Role { get; set; } = NinRole.All.Name;

    /// <summary>Download the official IDX files of a built-in dataset when they are missing.</summary>
    public bool DownloadDatasets { get; set; } = true;

    /// <summary>Seed an empty model store with the default model shipped with the service.</summary>
    public bool SeedDefaultModel { get; set; } = true;

    public string ResolvedHome => Resolve(Home, BaseDirectory);

    public string ResolvedDataDirectory => Resolve(DataDirectory, Path.Combine(ResolvedHome, "data"));

    public string ResolvedModelsDirectory => Resolve(ModelsDirectory, Path.Combine(ResolvedHome, "models"));

    public string ResolvedWorkDirectory => Resolve(WorkDirectory, Path.Combine(ResolvedHome, "work"));

    /// <summary>The caller's directory: <c>./nin</c> passes it as NIN_INVOCATION_DIR, else the current one.</summary>
    private static string BaseDirectory => Environment.GetEnvironmentVariable("NIN_INVOCATION_DIR") is { Length: > 0 } d ? d : Directory.GetCurrentDirectory();

    private static string Resolve(string? configured, string fallback) =>
        string.IsNullOrWhiteSpace(configured) ? Path.GetFullPath(fallback) : Path.GetFullPath(configured, BaseDirectory);
}
