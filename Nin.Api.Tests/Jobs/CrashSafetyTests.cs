using System.Net;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Nin.Api.Tests.Api;
using Nin.Api.Training;
using Nin.Model.Checkpoints;
using static Nin.Api.Tests.Jobs.JobTestKit;

namespace Nin.Api.Tests.Jobs;

/// <summary>Folder swaps that always leave a complete folder; native networks freed on every way a run can end.</summary>
[Collection(TorchCollection.Name)]
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

    /// <summary>TorchSharp's count of native tensors alive in this process.</summary>
    private static long LiveTensors()
    {
        var type = typeof(TorchSharp.torch.Tensor);
        var property = type.GetProperty("TotalCount", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic);
        return property is not null
            ? Convert.ToInt64(property.GetValue(null), System.Globalization.CultureInfo.InvariantCulture)
            : (long)type.GetField("_totalCount", BindingFlags.Static | BindingFlags.NonPublic)!.GetValue(null)!;
    }

    [Fact]
    public async Task No_native_tensor_outlives_a_run_that_failed_to_store_its_model_or_was_taken_over()
    {
        // The counter counts live tensors: one made and freed leaves it as it was.
        var start = LiveTensors();
        TorchSharp.torch.zeros(3).Dispose();
        Assert.Equal(start, LiveTensors());

        using var factory = new NinApiFactory(new Dictionary<string, string?> { ["Nin:SeedDefaultModel"] = "false" });
        using var client = factory.CreateClient();
        var store = Store(factory);

        // 1. The store refuses the version (a file where the model's folder would go): the run fails after training.
        //    A first such run fills whatever TorchSharp caches for the process; from then on every run must leave the
        //    count as it found it.
        File.WriteAllText(Path.Combine(factory.Home, "models", "refused"), "not a folder");
        Assert.Equal(JobStatus.Failed, (await FinishedAsync(client, await PostAsync(client, Tiny("refused")))).Status);
        var before = LiveTensors();
        for (var i = 0; i < 2; i++)
        {
            var refused = await FinishedAsync(client, await PostAsync(client, Tiny("refused")));
            Assert.Equal(JobStatus.Failed, refused.Status);
            Assert.Equal(before, LiveTensors()); // before: the trained network stayed allocated, run after run
        }

        // 2. Another worker takes the record over mid-run: this run stops and frees everything.
        var job = await PostAsync(client, Long("taken"));
        await WaitAsync(client, job, j => j.Status == JobStatus.Running && j.Progress.Batch >= 2);
        store.Update(job, j => j with { Worker = "elsewhere:1:abcdef" });
        var cancellation = factory.Services.GetRequiredService<JobCancellation>();
        await WaitUntilAsync(() => cancellation.Running.Count == 0, TimeSpan.FromSeconds(30), "the taken-over run stopped");
        await Task.Delay(200);
        Assert.Equal(before, LiveTensors());
        Assert.Equal(JobStatus.Running, store.Get(job)!.Status); // its record is the new holder's, untouched
    }
}
