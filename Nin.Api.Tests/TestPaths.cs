namespace Nin.Api.Tests;

/// <summary>Where tests find the repository and the shared datasets.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>
    /// <c>NIN_TEST_DATA_DIR</c>, else <c>../shared/datasets</c> beside the repository (how CI lays it out).
    /// </summary>
    public static string SharedDatasets { get; } =
        Environment.GetEnvironmentVariable("NIN_TEST_DATA_DIR") is { Length: > 0 } dir
            ? dir
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "datasets"));

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Nin.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Nin.sln not found above " + AppContext.BaseDirectory);
    }
}
