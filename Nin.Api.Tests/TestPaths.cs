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

    /// <summary>
    /// <see cref="SharedDatasets"/>, checked: tests of category Host read the built-in datasets through this and say
    /// what is missing instead of failing on a file deep inside.
    /// </summary>
    public static string Datasets =>
        File.Exists(Path.Combine(SharedDatasets, "fashion-mnist", "t10k-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(SharedDatasets, "fashion-mnist", "t10k-images-idx3-ubyte"))
            ? SharedDatasets
            : throw new InvalidOperationException(
                $"These tests (category Host) need the built-in datasets: Fashion-MNIST's IDX files in {Path.Combine(SharedDatasets, "fashion-mnist")} " +
                "(../shared/datasets beside the repository, as CI has it, or set NIN_TEST_DATA_DIR). Tests of category Unit need none: dotnet test --filter Category=Unit.");

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
