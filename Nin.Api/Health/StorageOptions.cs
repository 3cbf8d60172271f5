using Nin.Api.Infrastructure;

namespace Nin.Api.Health;

/// <summary>Disk space the service wants to keep. Bound from the <c>Storage</c> section.</summary>
public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    /// <summary>Below this many free bytes on a data folder, readiness reports it degraded (default 1 GiB).</summary>
    public long MinimumFreeBytes { get; set; } = 1L << 30;
}

/// <summary>The folders the service writes to, by role: <c>data</c> (datasets, uploads), <c>models</c> (the store), <c>work</c> (job records, checkpoints).</summary>
public static class DataFolders
{
    public static IReadOnlyList<(string Name, string Path)> Of(NinOptions options) =>
    [
        ("data", options.ResolvedDataDirectory),
        ("models", options.ResolvedModelsDirectory),
        ("work", options.ResolvedWorkDirectory),
    ];

    /// <summary>The folder a request writes to, by its route (<c>/datasets</c>: data, <c>/models</c>: models, else work).</summary>
    public static (string Name, string Path) ForRequest(PathString path, NinOptions options) =>
        path.StartsWithSegments("/datasets") ? Of(options)[0] : path.StartsWithSegments("/models") ? Of(options)[1] : Of(options)[2];
}
