namespace Nin.Model.Data;

/// <summary>A dataset distributed as four IDX files (MNIST's layout).</summary>
public sealed record IdxDatasetInfo(string Name, string Title, IReadOnlyList<string> ClassNames, string DownloadBase)
{
    public const string TrainImages = "train-images-idx3-ubyte";
    public const string TrainLabels = "train-labels-idx1-ubyte";
    public const string TestImages = "t10k-images-idx3-ubyte";
    public const string TestLabels = "t10k-labels-idx1-ubyte";

    public static IReadOnlyList<string> FileNames { get; } = [TrainImages, TrainLabels, TestImages, TestLabels];
}

/// <summary>The datasets every Nin service knows: read from <c>{dataDir}/{name}/</c>, gzip or raw.</summary>
public static class BuiltInDatasets
{
    public static readonly IdxDatasetInfo FashionMnist = new(
        "fashion-mnist",
        "Fashion-MNIST (Zalando): 28×28 grey clothing images",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/");

    public static readonly IdxDatasetInfo Mnist = new(
        "mnist",
        "MNIST: 28×28 grey handwritten digits",
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "https://ossci-datasets.s3.amazonaws.com/mnist/");

    public static IReadOnlyList<IdxDatasetInfo> All { get; } = [FashionMnist, Mnist];

    public static IdxDatasetInfo? Find(string name) =>
        All.FirstOrDefault(d => d.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The file for <paramref name="baseName"/> in the dataset's folder, gzip preferred, or null.</summary>
    public static string? Locate(string dataDir, IdxDatasetInfo info, string baseName)
    {
        var folder = Path.Combine(dataDir, info.Name);
        return new[] { baseName + ".gz", baseName }.Select(f => Path.Combine(folder, f)).FirstOrDefault(File.Exists);
    }

    /// <summary>Whether all four files are present.</summary>
    public static bool IsAvailable(string dataDir, IdxDatasetInfo info) =>
        IdxDatasetInfo.FileNames.All(f => Locate(dataDir, info, f) is not null);

    /// <summary>Loads train and test sets, optionally only the first images of each.</summary>
    /// <exception cref="FileNotFoundException">A file is missing; the message names the folder and the files looked for.</exception>
    public static DatasetSplit Load(string dataDir, IdxDatasetInfo info, int? maxTrain = null, int? maxTest = null)
    {
        string Need(string baseName) => Locate(dataDir, info, baseName) ?? throw new FileNotFoundException(
            $"Dataset '{info.Name}' is not in '{Path.Combine(dataDir, info.Name)}': looked for {baseName}.gz or {baseName}. " +
            $"Put the four IDX files ({string.Join(", ", IdxDatasetInfo.FileNames.Select(f => f + ".gz"))}) there, or allow the service to download them.");

        var (trainImages, trainLabels) = IdxReader.ReadPair(Need(IdxDatasetInfo.TrainImages), Need(IdxDatasetInfo.TrainLabels), info.ClassNames.Count, maxTrain);
        var (testImages, testLabels) = IdxReader.ReadPair(Need(IdxDatasetInfo.TestImages), Need(IdxDatasetInfo.TestLabels), info.ClassNames.Count, maxTest);
        return new DatasetSplit(
            new ImageDataset(info.Name, info.ClassNames, 1, trainImages.Rows, trainImages.Columns, trainImages.Pixels, trainLabels),
            new ImageDataset(info.Name, info.ClassNames, 1, testImages.Rows, testImages.Columns, testImages.Pixels, testLabels));
    }

    /// <summary>Downloads whichever of the four files are missing from the official mirror.</summary>
    public static async Task DownloadMissingAsync(string dataDir, IdxDatasetInfo info, HttpClient http, CancellationToken cancellationToken)
    {
        var folder = Directory.CreateDirectory(Path.Combine(dataDir, info.Name)).FullName;
        foreach (var baseName in IdxDatasetInfo.FileNames.Where(f => Locate(dataDir, info, f) is null))
        {
            var target = Path.Combine(folder, baseName + ".gz");
            var temp = target + ".part";
            using (var response = await http.GetAsync(new Uri(info.DownloadBase + baseName + ".gz"), HttpCompletionOption.ResponseHeadersRead, cancellationToken))
            {
                response.EnsureSuccessStatusCode();
                await using var file = File.Create(temp);
                await response.Content.CopyToAsync(file, cancellationToken);
            }

            // Validate before publishing the file, so a bad download never looks like a dataset.
            if (baseName.Contains("images", StringComparison.Ordinal))
            {
                IdxReader.ReadImages(temp, limit: 1);
            }
            else
            {
                IdxReader.ReadLabels(temp, limit: 1);
            }

            File.Move(temp, target, overwrite: true);
        }
    }
}
