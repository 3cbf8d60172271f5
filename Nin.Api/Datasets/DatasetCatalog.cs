using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Nin.Api.Infrastructure;
using Nin.Model.Data;

namespace Nin.Api.Datasets;

/// <summary>A dataset the service can train on, as GET /datasets lists it. <c>Location</c> is relative to the data folder.</summary>
public sealed record DatasetInfo(
    string Name,
    string Title,
    IReadOnlyList<string> Classes,
    int? Train,
    int? Test,
    int Channels,
    int Width,
    int Height,
    bool Available,
    string Location);

/// <summary>
/// The datasets of this service: the built-in IDX sets in the data folder (downloaded on first use
/// where allowed and reachable).
/// </summary>
public sealed class DatasetCatalog(IOptions<NinOptions> options, IHttpClientFactory httpClientFactory, UploadedDatasets uploads, ILogger<DatasetCatalog> logger)
{
    private readonly ConcurrentDictionary<string, (int Train, int Test)> counts = new();

    public string DataDirectory => options.Value.ResolvedDataDirectory;

    public IEnumerable<string> Names() => BuiltInDatasets.All.Select(d => d.Name).Concat(uploads.List().Select(u => u.Id));

    public IdxDatasetInfo? Find(string name) => BuiltInDatasets.Find(name);

    /// <summary>A built-in dataset's name or an uploaded dataset's id.</summary>
    public bool Exists(string name) => Find(name) is not null || uploads.Get(name) is not null;

    public IReadOnlyList<DatasetInfo> List() => BuiltInDatasets.All.Select(Describe).Concat(uploads.List().Select(Describe)).ToArray();

    public static DatasetInfo Describe(UploadedDataset u) =>
        new(u.Id, u.Name, u.Classes.Select(c => c.Name).ToArray(), u.Train, u.Test, u.Channels, u.Size, u.Size, true, $"uploads/{u.Id}");

    public DatasetInfo Describe(IdxDatasetInfo info)
    {
        var available = BuiltInDatasets.IsAvailable(DataDirectory, info);
        int? train = null, test = null;
        if (available)
        {
            try
            {
                var c = counts.GetOrAdd(info.Name, _ => (
                    IdxReader.PeekCount(BuiltInDatasets.Locate(DataDirectory, info, IdxDatasetInfo.TrainLabels)!),
                    IdxReader.PeekCount(BuiltInDatasets.Locate(DataDirectory, info, IdxDatasetInfo.TestLabels)!)));
                (train, test) = c;
            }
            catch (InvalidDataException)
            {
                available = false;
            }
        }

        // Relative to the data folder, like uploads' "uploads/{id}": answers carry no server paths.
        return new DatasetInfo(info.Name, info.Title, info.ClassNames, train, test, 1, 28, 28, available, info.Name);
    }

    /// <summary>Loads a dataset for training, downloading missing files first when allowed.</summary>
    public async Task<DatasetSplit> LoadAsync(string name, int? maxTrain, int? maxTest, CancellationToken cancellationToken)
    {
        if (UploadedDatasets.IsUploadId(name))
        {
            return uploads.Load(name, maxTrain, maxTest);
        }

        var info = Find(name) ?? throw new ArgumentException($"Unknown dataset '{name}'.");
        if (!BuiltInDatasets.IsAvailable(DataDirectory, info) && options.Value.DownloadDatasets)
        {
            try
            {
                using var http = httpClientFactory.CreateClient("datasets");
                await BuiltInDatasets.DownloadMissingAsync(DataDirectory, info, http, cancellationToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or InvalidDataException or TaskCanceledException or IOException && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("Could not download dataset {Dataset}: {Reason}", name, ex.Message);
            }
        }

        return BuiltInDatasets.Load(DataDirectory, info, maxTrain, maxTest);
    }
}
