using System.Diagnostics;

namespace Nin.Model.Training;

/// <summary>The parts of a training step <see cref="TrainingPhaseTimes"/> tells apart.</summary>
public enum TrainingPhase
{
    /// <summary>Gathering the batch, scaling, resizing and augmenting it, setting the learning rate.</summary>
    Data,

    /// <summary>Clearing the gradients, the forward pass and the loss.</summary>
    Forward,

    /// <summary>The backward pass.</summary>
    Backward,

    /// <summary>The optimizer step and the running loss and accuracy sums.</summary>
    Step,
}

/// <summary>
/// Where a training run's batches spend their time, phase by phase (<see cref="Trainer.PhaseTimes"/>): what
/// <c>./nin bench train --compare-pytorch --breakdown</c> sets side by side with the PyTorch anchor's.
/// </summary>
public sealed class TrainingPhaseTimes
{
    private readonly long[] ticks = new long[Enum.GetValues<TrainingPhase>().Length];

    /// <summary>The total time spent in <paramref name="phase"/> so far.</summary>
    public TimeSpan this[TrainingPhase phase] => Stopwatch.GetElapsedTime(0, ticks[(int)phase]);

    /// <summary>Batches recorded with <see cref="EndBatch"/>.</summary>
    public int Batches { get; private set; }

    /// <summary>The first recorded batch, whole: it pays the warm-up (kernel selection, first allocations, JIT).</summary>
    public TimeSpan FirstBatch { get; private set; }

    /// <summary>Ends a batch that started at <paramref name="start"/> and ended at <paramref name="end"/> (timestamps).</summary>
    public void EndBatch(long start, long end)
    {
        if (Batches++ == 0)
        {
            FirstBatch = Stopwatch.GetElapsedTime(start, end);
        }
    }

    /// <summary>Adds the time since <paramref name="mark"/> to <paramref name="phase"/> and moves the mark to now.</summary>
    public void Add(TrainingPhase phase, ref long mark)
    {
        var now = Stopwatch.GetTimestamp();
        ticks[(int)phase] += now - mark;
        mark = now;
    }
}
