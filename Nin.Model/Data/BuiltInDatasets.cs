namespace Nin.Model.Data;

/// <summary>
/// A dataset distributed as four IDX files (MNIST's layout), downloaded over HTTPS from <c>DownloadBase</c> and accepted
/// only with the SHA-256 of the official file (<c>Sha256</c>, by file name).
/// </summary>
public sealed record IdxDatasetInfo(string Name, string Title, IReadOnlyList<string> ClassNames, string DownloadBase, IReadOnlyDictionary<string, string> Sha256)
{
    /// <summary>The most bytes a download of an images file may take (the largest official one is 26 MB).</summary>
    public const long MaxImagesDownloadBytes = 64L * 1024 * 1024;

    /// <summary>The most bytes a download of a labels file may take (the official ones are under 30 KB).</summary>
    public const long MaxLabelsDownloadBytes = 1024 * 1024;

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
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        new Dictionary<string, string>
        {
            [IdxDatasetInfo.TrainImages] = "939c260027d7632320bfa7b865d874ea6eb61ced9d8cabaeb6832836566d96f1",
            [IdxDatasetInfo.TrainLabels] = "3037381f29eb3f2ed251a00f50feea2de4dae3cd5f97c16dd99cbcd0f5dcb2b7",
            [IdxDatasetInfo.TestImages] = "a143a278f071d4869d3e1399f7fa48ef0ad8b75b37cef75fbb1bc9a9b48d0125",
            [IdxDatasetInfo.TestLabels] = "03cf744135c9672f3a4ecada1fd6b513ea1fb8e7cadf7b58508e4d71fa51c88d",
        });

    public static readonly IdxDatasetInfo Mnist = new(
        "mnist",
        "MNIST: 28×28 grey handwritten digits",
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        new Dictionary<string, string>
        {
            [IdxDatasetInfo.TrainImages] = "db8f937d487057fb14a9f0fbe97f0bc8d311ab41b750d41e1ff37c43b9e55e19",
            [IdxDatasetInfo.TrainLabels] = "51fc562b6747b666fbf6e84ce29d43c3cb5f9c388c664d43b33f02095313405a",
            [IdxDatasetInfo.TestImages] = "cfeddb84311ecf044fc6a5b0f6ee8a24d265d4e83e388400186eb114082f4209",
            [IdxDatasetInfo.TestLabels] = "e41c74e484045d39b462a7790a4af51301bd9b0b24f0154798d713ec68c45920",
        });

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

    /// <summary>
    /// Downloads whichever of the four files are missing from the official mirror, over HTTPS only. Each download is
    /// cut off past its size cap, hashed as it arrives, and kept only when its SHA-256 is the official file's and it
    /// reads as IDX; anything else is deleted and reported as <see cref="InvalidDataException"/>.
    /// </summary>
    public static async Task DownloadMissingAsync(string dataDir, IdxDatasetInfo info, HttpClient http, CancellationToken cancellationToken)
    {
        var folder = Directory.CreateDirectory(Path.Combine(dataDir, info.Name)).FullName;
        foreach (var baseName in IdxDatasetInfo.FileNames.Where(f => Locate(dataDir, info, f) is null))
        {
            var uri = new Uri(info.DownloadBase + baseName + ".gz");
            if (uri.Scheme != Uri.UriSchemeHttps)
            {
                throw new InvalidDataException($"Dataset '{info.Name}' would be downloaded over {uri.Scheme}; only HTTPS is used.");
            }

            var cap = baseName.Contains("images", StringComparison.Ordinal) ? IdxDatasetInfo.MaxImagesDownloadBytes : IdxDatasetInfo.MaxLabelsDownloadBytes;
            var target = Path.Combine(folder, baseName + ".gz");
            var temp = target + ".part";
            try
            {
                string sha256;
                using (var response = await http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken))
                {
                    response.EnsureSuccessStatusCode();
                    if (response.Content.Headers.ContentLength > cap)
                    {
                        throw new InvalidDataException($"{uri} declares {response.Content.Headers.ContentLength:N0} bytes; at most {cap:N0} are downloaded.");
                    }

                    await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                    await using var file = File.Create(temp);
                    using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                    var buffer = new byte[81920];
                    long total = 0;
                    int n;
                    while ((n = await body.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        total += n;
                        if (total > cap)
                        {
                            throw new InvalidDataException($"{uri} sent more than {cap:N0} bytes; the download was stopped.");
                        }

                        hash.AppendData(buffer, 0, n);
                        await file.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                    }

                    sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
                }

                if (!info.Sha256.TryGetValue(baseName, out var expected) || !string.Equals(sha256, expected, StringComparison.OrdinalIgnoreCase))
                {
                    throw new InvalidDataException($"{uri} has SHA-256 {sha256}, not the official file's {expected ?? "(unknown)"}; it was not kept.");
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
            finally
            {
                File.Delete(temp);
            }
        }
    }
}
