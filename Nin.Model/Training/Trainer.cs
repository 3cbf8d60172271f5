using System.Diagnostics;
using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Model.Training;

/// <summary>
/// d2l's train_ch6: SGD on cross-entropy, test accuracy after every epoch, plus the recipe's options
/// (learning-rate schedule, augmentation, label smoothing). The dataset stays on the device as bytes;
/// each batch is gathered, scaled, resized and augmented there in one dispose scope, so a GPU never
/// waits for the CPU. Deterministic for a seed on the CPU, also across a resume. A NaN or infinite
/// loss stops the run with a <see cref="TrainingDivergedException"/>.
/// </summary>
public sealed class Trainer : IDisposable
{
    private List<EpochMetrics> history = [];

    private readonly TrainingOptions options;
    private readonly Device device;
    private readonly Tensor trainX;
    private readonly Tensor trainY;
    private readonly Tensor testX;
    private readonly Tensor testY;
    private readonly int[] testLabels;
    private readonly TorchSharp.Modules.SGD optimizer;

    public Trainer(ImageClassifier network, DatasetSplit data, TrainingOptions options, Device device)
    {
        var architecture = NetworkArchitectures.Get(network.Architecture);
        architecture.EnsureImageSize(options.ImageSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Epochs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Shift, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Shift, 0.5);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.LabelSmoothing, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(options.LabelSmoothing, 1);
        if (data.Train.Count == 0 || data.Test.Count == 0)
        {
            throw new ArgumentException("Training needs at least one training and one test image.");
        }

        Network = network;
        this.options = options;
        EvaluationBatchSize = TrainingMemory.EvaluationBatchSize(architecture, options.BatchSize, options.ImageSize, options.EvalBatchSize);
        this.device = device;
        (trainX, trainY) = ToDevice(data.Train, device);
        (testX, testY) = ToDevice(data.Test, device);
        testLabels = [.. data.Test.Labels.Select(b => (int)b)];
        network.to(device);
        if (device.type == DeviceType.CUDA)
        {
            // Every training batch has the same shape (the last one aside): let cuDNN time its convolution
            // algorithms once and keep the fastest, as PyTorch's torch.backends.cudnn.benchmark does.
            CudnnBenchmark.TrySet(true);
        }

        optimizer = optim.SGD(network.parameters(), options.LearningRate, options.Momentum, weight_decay: options.WeightDecay);
    }

    public ImageClassifier Network { get; }

    public int TrainCount => (int)trainY.shape[0];

    public int TestCount => (int)testY.shape[0];

    public int BatchesPerEpoch => (TrainCount + options.BatchSize - 1) / options.BatchSize;

    /// <summary>Images per test batch: at most <see cref="TrainingOptions.EvalBatchSize"/>, and no more memory than a training step.</summary>
    public int EvaluationBatchSize { get; }

    /// <summary>
    /// What the network said about each test image in the latest test pass (after the last epoch: the finished model's),
    /// so the run's evaluation needs no second pass over the test split. Null before any pass.
    /// </summary>
    public Evaluation.TestPredictions? LastTestPass { get; private set; }

    /// <summary>
    /// When set, every training batch adds the time of its phases here (data, forward, backward, step). Meant for the
    /// CPU, where every operator is synchronous; on CUDA the split is where the host waited, not where the device worked.
    /// </summary>
    public TrainingPhaseTimes? PhaseTimes { get; set; }

    /// <summary>Every finished epoch's figures, earlier runs' included when resumed (<see cref="History"/> as of now).</summary>
    public IReadOnlyList<EpochMetrics> History => history;

    /// <summary>
    /// Trains the remaining epochs. After each one, <paramref name="onEpochEnd"/> may save a checkpoint (network and
    /// optimizer, and <see cref="History"/>) so a later run can resume; it runs before the observer hears of the epoch,
    /// so an epoch reported as finished is never trained again after a crash.
    /// </summary>
    public ModelMetrics Run(ITrainingObserver observer, CancellationToken cancellationToken, ResumePoint? resume = null, Action<int, TorchSharp.Modules.OptimizerHelper>? onEpochEnd = null)
    {
        UseConfiguredThreads();
        history = new List<EpochMetrics>(resume?.History ?? []);
        var first = 1;
        if (resume is not null)
        {
            Network.load(resume.WeightsPath, strict: true);
            Network.to(device);
            if (resume.OptimizerPath is not null && File.Exists(resume.OptimizerPath))
            {
                optimizer.load_state_dict(resume.OptimizerPath);
            }

            first = resume.CompletedEpochs + 1;
        }

        var total = Stopwatch.StartNew();
        for (var epoch = first; epoch <= options.Epochs; epoch++)
        {
            var metrics = RunEpoch(epoch, observer, cancellationToken);
            history.Add(metrics);
            onEpochEnd?.Invoke(epoch, optimizer);
            observer.OnEpoch(metrics);
        }

        return TrainedModel.Summarise(history);
    }

    private EpochMetrics RunEpoch(int epoch, ITrainingObserver observer, CancellationToken cancellationToken)
    {
        // Every epoch reseeds from (seed, epoch): the same run gives the same numbers, resumed or not.
        torch.manual_seed(options.Seed + (epoch * 1_000_003L));
        using var shuffle = new Generator((ulong)(options.Seed + (epoch * 7_919L)));
        using var augment = new Generator((ulong)(options.Seed + (epoch * 104_729L) + 1));
        var augmenting = Augmentation.IsActive(options);
        Network.train();

        var watch = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var batches = BatchesPerEpoch;
        var bs = options.BatchSize;
        using var lossSum = zeros(1, dtype: ScalarType.Float64, device: device);
        using var correct = zeros(1, dtype: ScalarType.Int64, device: device);
        using var permutation = randperm(TrainCount, generator: shuffle);
        using var order = permutation.to(device);

        for (var b = 0; b < batches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var phases = PhaseTimes;
            var mark = phases is null ? 0 : Stopwatch.GetTimestamp();
            var batchStart = mark;
            var index = order.narrow(0, b * bs, Math.Min(bs, TrainCount - (b * bs)));
            var x = Preprocess.ToNetworkInput(trainX.index_select(0, index), options.ImageSize);
            if (augmenting)
            {
                x = Augmentation.Apply(x, options.Shift, options.Flip, augment);
            }

            var y = trainY.index_select(0, index);
            var lr = LearningRateSchedules.At(options.Schedule, options.LearningRate, ((long)(epoch - 1) * batches) + b, (long)options.Epochs * batches);
            foreach (var group in optimizer.ParamGroups)
            {
                group.LearningRate = lr;
            }

            phases?.Add(TrainingPhase.Data, ref mark);
            optimizer.zero_grad();
            var logits = Network.forward(x);
            var loss = nn.functional.cross_entropy(logits, y, label_smoothing: options.LabelSmoothing);
            phases?.Add(TrainingPhase.Forward, ref mark);
            loss.backward();
            phases?.Add(TrainingPhase.Backward, ref mark);
            optimizer.step();

            using (no_grad())
            {
                lossSum.add_(loss.detach().to_type(ScalarType.Float64) * index.shape[0]);
                correct.add_(logits.argmax(1).eq(y).sum());
            }

            phases?.Add(TrainingPhase.Step, ref mark);
            phases?.EndBatch(batchStart, mark);

            if (b == 0 || b == batches - 1 || watch.Elapsed - lastReport > TimeSpan.FromMilliseconds(250))
            {
                lastReport = watch.Elapsed;
                var value = loss.item<float>();
                EnsureFinite(value, epoch, b + 1);
                observer.OnBatch(new BatchProgress(epoch, b + 1, batches, value));
            }
        }

        var trainSeconds = watch.Elapsed.TotalSeconds;
        var trainLoss = lossSum.item<double>() / TrainCount;
        EnsureFinite(trainLoss, epoch, batches);
        var trainAccuracy = (double)correct.item<long>() / TrainCount;
        var testAccuracy = Evaluate(cancellationToken);
        var seconds = watch.Elapsed.TotalSeconds;
        return new EpochMetrics(epoch, trainLoss, trainAccuracy, testAccuracy, TrainCount / trainSeconds, seconds);
    }

    /// <summary>Accuracy on the test set in eval mode; the predictions are kept in <see cref="LastTestPass"/>.</summary>
    public double Evaluate(CancellationToken cancellationToken = default)
    {
        UseConfiguredThreads();
        Network.eval();
        using var inference = inference_mode();
        var predicted = new int[TestCount];
        var probability = new float[TestCount];
        long right = 0;
        for (var start = 0; start < TestCount; start += EvaluationBatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var n = Math.Min(EvaluationBatchSize, TestCount - start);
            var x = Preprocess.ToNetworkInput(testX.narrow(0, start, n), options.ImageSize);
            var (top, index) = nn.functional.softmax(Network.forward(x), 1).max(1);
            var classes = index.cpu().data<long>().ToArray();
            top.cpu().data<float>().ToArray().CopyTo(probability, start);
            for (var i = 0; i < n; i++)
            {
                predicted[start + i] = (int)classes[i];
                right += classes[i] == testLabels[start + i] ? 1 : 0;
            }
        }

        LastTestPass = new Evaluation.TestPredictions(testLabels, predicted, probability);
        return (double)right / TestCount;
    }

    private static void EnsureFinite(double loss, int epoch, int batch)
    {
        if (!double.IsFinite(loss))
        {
            throw new TrainingDivergedException(FormattableString.Invariant(
                $"The training loss became {(double.IsNaN(loss) ? "NaN" : "infinite")} in epoch {epoch} (by batch {batch}): the run diverged. Try a lower learning rate or the robust recipe."));
        }
    }

    /// <summary>This thread trains with all the configured Torch threads, whatever a server set last.</summary>
    private static void UseConfiguredThreads()
    {
        if (Runtime.TorchRuntime.IsInitialized)
        {
            Runtime.TorchRuntime.UseThreads();
        }
    }

    public void Dispose()
    {
        trainX.Dispose();
        trainY.Dispose();
        testX.Dispose();
        testY.Dispose();
        optimizer.Dispose();
    }

    private static (Tensor X, Tensor Y) ToDevice(ImageDataset data, Device device)
    {
        using var x = tensor(data.Pixels, [data.Count, data.Channels, data.Height, data.Width], dtype: ScalarType.Byte);
        using var y = tensor(data.Labels, [data.Count], dtype: ScalarType.Byte);
        using var labels = y.to_type(ScalarType.Int64); // disposed here, not left to the GC
        return (x.to(device), labels.to(device));
    }
}
