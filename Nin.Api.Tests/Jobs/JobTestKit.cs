using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using static Nin.Api.Tests.Api.TrainingApiTests;

namespace Nin.Api.Tests.Jobs;

/// <summary>What the job tests share: small requests, posting, direct records, services with settings.</summary>
internal static class JobTestKit
{
    /// <summary>A service without the shipped model, with <paramref name="extra"/> settings, in <paramref name="home"/> (else a fresh one).</summary>
    public static NinApiFactory Factory(Dictionary<string, string?>? extra = null, string? home = null)
    {
        var settings = new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" };
        foreach (var (k, v) in extra ?? [])
        {
            settings[k] = v;
        }

        return new NinApiFactory(settings, home);
    }

    /// <summary>Runs <paramref name="test"/> with a fresh home folder that is removed afterwards, whatever happened.</summary>
    public static async Task WithHomeAsync(Func<string, Task> test)
    {
        var home = Directory.CreateTempSubdirectory("nin-jobs-").FullName;
        try
        {
            await test(home);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    /// <summary>A run of a few seconds on two cores.</summary>
    public static object Tiny(string model, int epochs = 1) =>
        new { epochs, batchSize = 32, imageSize = 67, maxTrainImages = 64, maxTestImages = 32, modelName = model };

    /// <summary>A run that keeps the worker busy until cancelled.</summary>
    public static object Long(string model) =>
        new { epochs = 50, batchSize = 16, imageSize = 96, maxTrainImages = 4000, maxTestImages = 50, modelName = model };

    public static TrainSettings Settings(string model = "m", string dataset = "fashion-mnist") =>
        new(dataset, 1, 8, 0.1, 0, 0, 67, 0, "cpu", model, 32, 16, false);

    public static async Task<string> PostAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync(new Uri("/train", UriKind.Relative), body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST /train answered {response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<TrainAccepted>(Json))!.JobId;
    }

    public static Task<JobSnapshot> WaitAsync(HttpClient client, string jobId, Func<JobSnapshot, bool> condition, int seconds = 120) =>
        WaitForAsync(client, jobId, condition, TimeSpan.FromSeconds(seconds));

    public static Task<JobSnapshot> FinishedAsync(HttpClient client, string jobId, int seconds = 180) =>
        WaitAsync(client, jobId, j => j.IsFinished, seconds);

    public static ITrainingJobStore Store(NinApiFactory factory) => factory.Services.GetRequiredService<ITrainingJobStore>();

    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what}: not within {timeout.TotalSeconds:F0} s");
            await Task.Delay(100);
        }
    }

    /// <summary>Every file under <paramref name="root"/> with its SHA-256 (relative paths), to show nothing existing changed.</summary>
    public static Dictionary<string, string> Snapshot(string root, Func<string, bool>? skip = null) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => skip?.Invoke(f) != true)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));

}

/// <summary>A job store that hands every call to another; tests override what they watch or break.</summary>
internal class ForwardingStore(ITrainingJobStore inner) : ITrainingJobStore
{
    public virtual string JobDirectory(string jobId) => inner.JobDirectory(jobId);

    public virtual JobSnapshot Create(TrainSettings settings, Func<Hangfire.IBackgroundJobClient, JobSnapshot, string>? enqueue) => inner.Create(settings, enqueue);

    public virtual JobSnapshot? Get(string jobId) => inner.Get(jobId);

    public virtual JobPage List(JobQuery query) => inner.List(query);

    public virtual IReadOnlyDictionary<JobStatus, int> CountByStatus() => inner.CountByStatus();

    public virtual JobSnapshot? LatestWithEpochs() => inner.LatestWithEpochs();

    public virtual JobSnapshot? Update(string jobId, Func<JobSnapshot, JobSnapshot?> change, bool persist = true) => inner.Update(jobId, change, persist);

    public virtual IReadOnlyList<string> DeleteFinishedBefore(DateTimeOffset cutoff) => inner.DeleteFinishedBefore(cutoff);

    public virtual IReadOnlyList<DamagedJobRecord> Damaged() => inner.Damaged();
}
