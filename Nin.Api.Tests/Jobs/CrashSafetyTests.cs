using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>Folder swaps that always leave a complete folder; native networks freed on every way a run can end.</summary>
[Collection(TorchCollection.Name)]
[HostTests]
public sealed class CrashSafetyTests
{
    [Fact]
    public async Task A_replaced_folder_exists_complete_at_every_instant()
    {
        var root = Directory.CreateTempSubdirectory("nin-swap-").FullName;
        var target = Path.Combine(root, "checkpoint");
        try
        {
            AtomicDirectory.Replace(target, d => { File.WriteAllText(Path.Combine(d, "state.json"), "0"); return 0; });
            var missing = 0;
            var reads = 0;
            using var stop = new CancellationTokenSource();
            var reader = Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    reads++;
                    try
                    {
                        if (!Directory.Exists(target) || File.ReadAllText(Path.Combine(target, "state.json")).Length == 0)
                        {
                            missing++;
                        }
                    }
                    catch (IOException)
                    {
                        missing++; // the folder vanished between the two checks
                    }
                }
            });

            for (var i = 1; i <= 400; i++)
            {
                var n = i;
                AtomicDirectory.Replace(target, d => { File.WriteAllText(Path.Combine(d, "state.json"), n.ToString(System.Globalization.CultureInfo.InvariantCulture)); return n; });
            }

            await stop.CancelAsync();
            await reader;
            Assert.True(reads > 400, $"the reader ran {reads} times");
            Assert.Equal(0, missing); // before: the folder was gone between its two renames
            Assert.Equal("400", File.ReadAllText(Path.Combine(target, "state.json")));
            Assert.Equal(["checkpoint"], Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName)); // no staging left
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Without_an_atomic_exchange_a_swap_cut_between_its_renames_is_recovered_from_the_previous_folder()
    {
        var root = Directory.CreateTempSubdirectory("nin-swap-").FullName;
        var target = Path.Combine(root, "checkpoint");
        var exchange = AtomicDirectory.ExchangeSupported;
        try
        {
            AtomicDirectory.ExchangeSupported = false;
            AtomicDirectory.Replace(target, d => { File.WriteAllText(Path.Combine(d, "state.json"), "1"); return 1; });
            AtomicDirectory.Replace(target, d => { File.WriteAllText(Path.Combine(d, "state.json"), "2"); return 2; });
            Assert.Equal("2", File.ReadAllText(Path.Combine(target, "state.json")));

            // A crash right after the old folder moved aside: only ".checkpoint.previous" is there.
            Directory.Move(target, Path.Combine(root, ".checkpoint.previous"));
            Assert.Null(EpochCheckpoint.Read(Path.Combine(root, "missing")));
            Assert.True(AtomicDirectory.Recover(target));
            Assert.Equal("2", File.ReadAllText(Path.Combine(target, "state.json")));
            Assert.False(Directory.Exists(Path.Combine(root, ".checkpoint.previous")));
        }
        finally
        {
            AtomicDirectory.ExchangeSupported = exchange;
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task The_network_of_a_run_is_disposed_when_the_store_refuses_its_model_and_when_it_is_taken_over()
    {
        var created = new System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<TorchSharp.Modules.Parameter>>();
        void Record(string jobId, Nin.Model.Network.ImageClassifier network) => created[jobId] = [.. network.parameters()];
        TrainingJob.NetworkCreated += Record;
        try
        {
            using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
            using var client = factory.CreateClient();
            var store = Store(factory);

            // 1. The store refuses the version (a file where the model's folder would go): the run fails after training.
            File.WriteAllText(Path.Combine(factory.Home, "models", "refused"), "not a folder");
            var refused = await FinishedAsync(client, await PostAsync(client, Tiny("refused")));
            Assert.Equal(JobStatus.Failed, refused.Status);
            AssertFreed(created, refused.JobId); // before: the trained network stayed allocated until a GC found it

            // 2. Another worker takes the record over mid-run: this run stops and frees its network.
            var job = await PostAsync(client, Long("taken"));
            await WaitAsync(client, job, j => j.Status == JobStatus.Running && j.Progress.Batch >= 2);
            store.Update(job, j => j with { Worker = "elsewhere:1:abcdef" });
            var cancellation = factory.Services.GetRequiredService<JobCancellation>();
            await WaitUntilAsync(() => cancellation.Running.Count == 0, TimeSpan.FromSeconds(30), "the taken-over run stopped");
            AssertFreed(created, job);
            Assert.Equal(JobStatus.Running, store.Get(job)!.Status); // its record is the new holder's, untouched

            // 3. And a run that succeeds frees it too, after its version is stored.
            var done = await FinishedAsync(client, await PostAsync(client, Tiny("kept")));
            Assert.Equal(JobStatus.Succeeded, done.Status);
            AssertFreed(created, done.JobId);
        }
        finally
        {
            TrainingJob.NetworkCreated -= Record;
        }
    }

    private static void AssertFreed(System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<TorchSharp.Modules.Parameter>> created, string jobId)
    {
        Assert.True(created.TryGetValue(jobId, out var parameters), $"job {jobId} created no network");
        Assert.NotEmpty(parameters);
        Assert.All(parameters, p => Assert.True(p.IsInvalid, "a parameter of the run's network is still allocated"));
    }
}
