using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Training;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

[Collection(TorchCollection.Name)]
[HostTests]
public sealed class TrainerTests : IDisposable
{
    private static readonly Lazy<DatasetSplit> Data = new(() => BuiltInDatasets.Load(TestPaths.Datasets, BuiltInDatasets.FashionMnist, 96, 48));
    private readonly string root = Directory.CreateTempSubdirectory("nin-train-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static readonly TrainingOptions Small = new() { Epochs = 2, BatchSize = 32, ImageSize = 67, Seed = 7, EvalBatchSize = 48 };

    private sealed class Recorder : ITrainingObserver
    {
        public List<BatchProgress> Batches { get; } = [];

        public List<EpochMetrics> Epochs { get; } = [];

        public void OnBatch(BatchProgress progress) => Batches.Add(progress);

        public void OnEpoch(EpochMetrics metrics) => Epochs.Add(metrics);
    }

    private static ModelMetrics Train(TrainingOptions options, Recorder recorder, ResumePoint? resume = null, Action<int, ImageClassifier, TorchSharp.Modules.OptimizerHelper>? save = null)
    {
        manual_seed(options.Seed);
        using var net = new NinNetwork(1, 10);
        using var trainer = new Trainer(net, Data.Value, options, CPU);
        return trainer.Run(recorder, CancellationToken.None, resume, save is null ? null : (e, o) => save(e, net, o));
    }

    [Fact]
    public void Same_seed_gives_same_metrics_and_sane_figures()
    {
        var a = new Recorder();
        var b = new Recorder();
        var first = Train(Small, a);
        var second = Train(Small, b);

        Assert.Equal(2, a.Epochs.Count);
        Assert.Equal(a.Epochs.Select(e => (e.TrainLoss, e.TrainAccuracy, e.TestAccuracy)), b.Epochs.Select(e => (e.TrainLoss, e.TrainAccuracy, e.TestAccuracy)));
        Assert.All(a.Epochs, e =>
        {
            Assert.True(double.IsFinite(e.TrainLoss) && e.TrainLoss > 0);
            Assert.InRange(e.TrainAccuracy, 0, 1);
            Assert.InRange(e.TestAccuracy, 0, 1);
            Assert.True(e.ExamplesPerSecond > 0);
        });
        Assert.Equal(first.TestAccuracy, second.TestAccuracy);
        Assert.Contains(a.Batches, p => p is { Epoch: 2, Batch: 3, Batches: 3 });
    }

    [Fact]
    public void Phase_times_split_every_batch_and_change_no_figure()
    {
        var timed = new Recorder();
        var phases = new TrainingPhaseTimes();
        manual_seed(Small.Seed);
        using (var net = new NinNetwork(1, 10))
        using (var trainer = new Trainer(net, Data.Value, Small, CPU) { PhaseTimes = phases })
        {
            trainer.Run(timed, CancellationToken.None);
        }

        var plain = new Recorder();
        Train(Small, plain);

        // The same run, timed or not: the timing only reads the clock between operators.
        Assert.Equal(plain.Epochs.Select(e => (e.TrainLoss, e.TrainAccuracy, e.TestAccuracy)), timed.Epochs.Select(e => (e.TrainLoss, e.TrainAccuracy, e.TestAccuracy)));
        Assert.Equal(2 * 3, phases.Batches); // 96 images in batches of 32, two epochs
        Assert.All(Enum.GetValues<TrainingPhase>(), p => Assert.True(phases[p] > TimeSpan.Zero, $"{p} took no time"));
        var total = Enum.GetValues<TrainingPhase>().Aggregate(TimeSpan.Zero, (sum, p) => sum + phases[p]);
        Assert.InRange(phases.FirstBatch, TimeSpan.FromTicks(1), total);
        Assert.True(phases[TrainingPhase.Backward] > phases[TrainingPhase.Step], "the backward pass outweighs an SGD step");
    }

    [Fact]
    public void An_epoch_is_checkpointed_before_observers_hear_of_it_so_a_reported_epoch_is_never_rerun()
    {
        var recorder = new Recorder();
        var seen = new List<(int Saved, int Reported)>();
        Train(Small, recorder, save: (epoch, _, _) => seen.Add((epoch, recorder.Epochs.Count)));

        // When epoch k's checkpoint is written, observers (the hub, the job record) know only epochs before k.
        Assert.Equal([(1, 0), (2, 1)], seen);
        Assert.Equal(2, recorder.Epochs.Count);
    }

    [Fact]
    public void Resuming_from_an_epoch_checkpoint_continues_the_same_run()
    {
        var straight = new Recorder();
        Train(Small, straight);

        // Stop after epoch 1 (by training one epoch), keeping its checkpoint...
        var weights = Path.Combine(root, "epoch.bin");
        var optimizer = Path.Combine(root, "optim.bin");
        var partial = new Recorder();
        Train(Small with { Epochs = 1 }, partial, save: (_, net, opt) =>
        {
            net.save(weights);
            opt.save_state_dict(optimizer);
        });

        // ...then resume for the second one.
        var resumed = new Recorder();
        Train(Small, resumed, new ResumePoint(1, partial.Epochs, weights, optimizer));

        Assert.Single(resumed.Epochs);
        Assert.Equal(2, resumed.Epochs[0].Epoch);
        Assert.Equal(straight.Epochs[1].TrainLoss, resumed.Epochs[0].TrainLoss, 6);
        Assert.Equal(straight.Epochs[1].TestAccuracy, resumed.Epochs[0].TestAccuracy);
    }

    [Fact]
    public void Cancellation_stops_between_batches()
    {
        using var cts = new CancellationTokenSource();
        var recorder = new CancelAfterFirstReport(cts);
        manual_seed(1);
        using var net = new NinNetwork(1, 10);
        using var trainer = new Trainer(net, Data.Value, Small with { BatchSize = 8 }, CPU);
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Run(recorder, cts.Token));
        Assert.Empty(recorder.Epochs);
    }

    private sealed class CancelAfterFirstReport(CancellationTokenSource cts) : ITrainingObserver
    {
        public List<EpochMetrics> Epochs { get; } = [];

        public void OnBatch(BatchProgress progress) => cts.Cancel();

        public void OnEpoch(EpochMetrics metrics) => Epochs.Add(metrics);
    }
}
