using Nin.Model.Checkpoints;
using Nin.Model.Data;
using Nin.Model.Network;
using Nin.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nin.Api.Tests.Model;

/// <summary>The recipe's parts: schedules, augmentation, presets, the did-not-learn verdict, and a diverging run.</summary>
[Collection(TorchCollection.Name)]
[UnitTests]
public sealed class RecipeTests
{
    [Fact]
    public void One_cycle_rises_from_a_25th_of_the_peak_to_the_peak_at_30_percent_then_falls_to_almost_nothing()
    {
        const long steps = 1000;
        double At(long s) => LearningRateSchedules.At(LearningRateSchedule.OneCycle, 0.1, s, steps);
        Assert.Equal(0.004, At(0), 6);
        Assert.Equal(0.1, At(299), 3);
        Assert.True(At(150) > At(0) && At(150) < At(299));
        Assert.True(At(999) < 1e-6);
        Assert.Equal(0.1, Enumerable.Range(0, (int)steps).Max(s => At(s)), 6);
    }

    [Fact]
    public void Cosine_warms_up_linearly_then_decays_to_zero_and_constant_stays()
    {
        double At(long s) => LearningRateSchedules.At(LearningRateSchedule.Cosine, 0.2, s, 100);
        Assert.Equal(0.04, At(0), 6);            // 5 warm-up steps: 1/5 of the peak first
        Assert.Equal(0.2, At(4), 6);
        Assert.True(At(50) < 0.2 && At(50) > 0);
        Assert.True(At(99) < 0.001);
        Assert.Equal(0.1, LearningRateSchedules.At(LearningRateSchedule.Constant, 0.1, 77, 100));
    }

    [Fact]
    public void Flip_without_shift_mirrors_images_and_augmentation_repeats_for_the_same_seed()
    {
        using var scope = NewDisposeScope();
        var x = arange(2 * 1 * 4 * 4, dtype: ScalarType.Float32).view(2, 1, 4, 4);
        using var g1 = new Generator(5);
        using var g2 = new Generator(5);
        var a = Augmentation.Apply(x, 0, flip: true, g1);
        var b = Augmentation.Apply(x, 0, flip: true, g2);
        Assert.True(a.allclose(b, rtol: 0, atol: 0), "the same generator seed gives the same augmentation");
        for (var i = 0; i < 2; i++)
        {
            var same = a[i].allclose(x[i], atol: 1e-4);
            var mirrored = a[i].allclose(x[i].flip(2), atol: 1e-4);
            Assert.True(same ^ mirrored, $"image {i} is either left alone or mirrored exactly");
        }

        using var g3 = new Generator(6);
        var shifted = Augmentation.Apply(rand(8, 3, 67, 67), 0.1, flip: false, g3);
        Assert.Equal(new long[] { 8, 3, 67, 67 }, shifted.shape);
    }

    [Fact]
    public void The_presets_are_d2ls_recipe_exactly_and_the_robust_combination()
    {
        var d2l = TrainingRecipes.Options(TrainingRecipes.D2l, 224, 0);
        var defaults = new TrainingOptions();
        Assert.Equal(defaults with { Recipe = "d2l" }, d2l);
        Assert.Equal("nin", TrainingRecipes.D2l.Architecture);

        var robust = TrainingRecipes.Robust;
        Assert.Equal(("nin-bn", LearningRateSchedule.OneCycle, 0.1, 0.9, 1e-4, 0.1, true),
            (robust.Architecture, robust.Schedule, robust.LearningRate, robust.Momentum, robust.WeightDecay, robust.Shift, robust.Flip));
    }

    [Fact]
    public void A_run_stuck_at_ln_k_or_at_chance_gets_warnings_and_a_run_that_learned_none()
    {
        static EpochMetrics E(int epoch, double loss, double acc) => new(epoch, loss, acc, acc, 100, 1);
        Assert.Empty(TrainingOutcome.Warnings([E(1, 1.2, 0.4), E(2, 0.3, 0.95)], 3));
        Assert.Empty(TrainingOutcome.Warnings([E(1, 1.0986, 0.9)], 3)); // one epoch: the loss may still be high

        var stuck = TrainingOutcome.Warnings([E(1, 1.0986, 0.33), E(2, 1.0986, 0.333)], 3);
        Assert.Equal(2, stuck.Count);
        Assert.All(stuck, w => Assert.StartsWith("did not learn", w, StringComparison.Ordinal));
        Assert.Contains(stuck, w => w.Contains("robust recipe", StringComparison.Ordinal));

        Assert.Single(TrainingOutcome.Warnings([E(1, 0.5, 0.1), E(2, 0.4, 0.14)], 10)); // test accuracy at chance only
    }

    [Fact]
    public void A_diverging_run_stops_with_the_reason()
    {
        var data = SyntheticShapes.Generate(classes: 2, perClass: 12, size: 16, seed: 3);
        ModelMetrics Train(RecipePreset preset, int epochs, int batch, double lr = 0.1)
        {
            manual_seed(1);
            using var net = NetworkArchitectures.Get(preset.Architecture).Create(3, 2);
            var options = TrainingRecipes.Options(preset, 67, 1) with { Epochs = epochs, BatchSize = batch, LearningRate = lr, EvalBatchSize = 64 };
            using var trainer = new Trainer(net, data, options, CPU);
            return trainer.Run(new Quiet(), CancellationToken.None);
        }

        var ex = Assert.Throws<TrainingDivergedException>(() => Train(TrainingRecipes.Robust, epochs: 2, batch: 5, lr: 1e30));
        Assert.Contains("NaN", ex.Message.Replace("infinite", "NaN", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    private sealed class Quiet : ITrainingObserver
    {
        public void OnBatch(BatchProgress progress)
        {
        }

        public void OnEpoch(EpochMetrics metrics)
        {
        }
    }
}
