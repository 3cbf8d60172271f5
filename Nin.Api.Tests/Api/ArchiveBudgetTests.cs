using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Datasets;
using Nin.Api.Tests.Hostile;
using SkiaSharp;

namespace Nin.Api.Tests.Api;

/// <summary>
/// Dataset zips built to cost more than their bytes: each budget is decided before the work it bounds (an entry
/// count from the end record, depth and overlaps from the index, the stored size from the entry count, pixels
/// from headers), cancellation stops an import at once, and the storage quotas answer 413 and 507 with the figures.
/// </summary>
[UnitTests]
public sealed class ArchiveBudgetTests : IDisposable
{
    private static readonly Uri Datasets = new("/datasets", UriKind.Relative);
    private readonly List<NinApiFactory> factories = [];
    private readonly List<string> folders = [];

    public void Dispose()
    {
        foreach (var f in factories)
        {
            f.Dispose();
        }

        foreach (var folder in folders)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private NinApiFactory Service(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false", ["RateLimiting:Enabled"] = "false" };
        var data = Directory.CreateTempSubdirectory("nin-archive-").FullName;
        all["Nin:DataDirectory"] = data; // uploads land here; the quota counts only them
        folders.Add(data);
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        var factory = new NinApiFactory(all);
        factories.Add(factory);
        return factory;
    }

    private static async Task<string> Refused(HttpClient client, byte[] zip, HttpStatusCode status, params (string Key, string Value)[] fields)
    {
        using var response = await client.PostAsync(Datasets, TestZips.Form(zip, fields: fields));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
    }

    private static byte[] Png(int side, int seed = 0) => TestZips.Colour(new SKColor((byte)(40 * seed), 90, 200), seed, side: side);

    /// <summary>Two classes of <paramref name="perClass"/> pictures each.</summary>
    private static RawZip TwoClasses(int perClass, int side = 12)
    {
        var zip = new RawZip();
        var (a, b) = (Png(side, 1), Png(side, 5));
        for (var i = 0; i < perClass; i++)
        {
            zip.Add($"a/{i}.png", a, deflate: false).Add($"b/{i}.png", b, deflate: false);
        }

        return zip;
    }

    [Fact]
    public async Task The_entry_count_comes_from_the_end_record_before_the_directory_is_read()
    {
        using var client = Service(("DatasetUploads:MaxEntries", "100")).CreateClient();
        var zip = TwoClasses(3).Build(declaredEntries: 60_000); // six records follow; the end record claims 60,000
        var detail = await Refused(client, zip, HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("60,000 entries", detail, StringComparison.Ordinal);
        Assert.Contains("100", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entries_sharing_compressed_bytes_are_refused()
    {
        using var client = Service().CreateClient();
        var zip = TwoClasses(3);
        for (var i = 0; i < 200; i++)
        {
            zip.Alias($"a/copy{i}.png", 0); // 200 more names for the bytes of a/0.png
        }

        var detail = await Refused(client, zip.Build(), HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("overlap", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deep_paths_are_refused_from_the_index()
    {
        using var client = Service().CreateClient();
        var deep = string.Concat(Enumerable.Repeat("d/", 400));
        var zip = TwoClasses(3).Add($"{deep}x.png", Png(8), deflate: false).Build();
        var watch = Stopwatch.StartNew();
        var detail = await Refused(client, zip, HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("401 folders deep", detail, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"{watch.Elapsed}");
    }

    [Fact]
    public async Task Declared_pixels_of_all_images_are_bounded_before_each_is_decoded()
    {
        using var client = Service(("DatasetUploads:MaxTotalPixels", "20000"), ("DatasetUploads:MaxImagePixels", "20000")).CreateClient();
        var zip = TwoClasses(3, side: 60).Build(); // 6 × 3,600 pixels: the sixth passes 20,000
        var detail = await Refused(client, zip, HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("20,000 pixels", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dataset_over_its_quota_is_413_and_uploads_over_the_total_are_507_with_the_figures()
    {
        // 2 × 40 one-colour pictures stored at 28 × 28: at least 80 × 785 = 62,800 bytes grey.
        var factory = Service(("DatasetUploads:MaxDatasetBytes", "100000"), ("DatasetUploads:MaxTotalBytes", "120000"));
        using var client = factory.CreateClient();
        var detail = await Refused(client, TwoClasses(80).Build(), HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("125,600", detail, StringComparison.Ordinal); // 160 × 785, decided from the entry count
        Assert.Contains("100,000", detail, StringComparison.Ordinal);

        using (var first = await client.PostAsync(Datasets, TestZips.Form(TwoClasses(40).Build(), fields: ("channels", "1"))))
        {
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        }

        detail = await Refused(client, TwoClasses(40).Build(), HttpStatusCode.InsufficientStorage, ("channels", "1"));
        Assert.Contains("120,000", detail, StringComparison.Ordinal);
        Assert.Contains("62,800", detail, StringComparison.Ordinal);

        // Room comes back when a dataset is deleted.
        var id = (await client.GetFromJsonAsync<JsonElement>(Datasets)).EnumerateArray().Select(d => d.GetProperty("name").GetString()!).Single(n => n.StartsWith("u-", StringComparison.Ordinal));
        using (await client.DeleteAsync(new Uri($"/datasets/{id}", UriKind.Relative)))
        {
        }

        using var again = await client.PostAsync(Datasets, TestZips.Form(TwoClasses(40).Build(), fields: ("channels", "1")));
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
    }

    [Fact]
    public async Task A_cancelled_import_stops_within_an_entry()
    {
        var factory = Service();
        var uploads = factory.Services.GetRequiredService<UploadedDatasets>();
        var zip = TwoClasses(8000, side: 40).Build();
        using var cancel = new CancellationTokenSource();
        var watch = Stopwatch.StartNew();

        // On a thread of its own, as POST /datasets runs it: on a pool thread it held one of a cold two-core runner's
        // threads, and this test's own delay overran by 600 ms while the import finished (CI saw it end first).
        var import = Task.Factory.StartNew(() => uploads.Import(new MemoryStream(zip), "big", 28, "auto", cancel.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await Task.Delay(300);
        Assert.False(import.IsCompleted, $"the import should still be decoding; it ended {import.Status} after {watch.Elapsed.TotalMilliseconds:F0} ms: {import.Exception?.GetBaseException().Message}");
        var cancelledAt = watch.Elapsed;
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => import);
        Assert.True(watch.Elapsed - cancelledAt < TimeSpan.FromSeconds(1), $"stopped {watch.Elapsed - cancelledAt} after cancellation");
        Assert.Empty(uploads.List());
    }
}
