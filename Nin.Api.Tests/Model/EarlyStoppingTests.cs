using System.Text.Json;
using Nin.Model.Experiments;

namespace Nin.Api.Tests.Model;

/// <summary>The sweep's stopping rules and search spaces as pure functions: curves in, verdicts out.</summary>
[UnitTests]
public sealed class EarlyStoppingTests
{
    private static TrialCurve Curve(int trial, params double[] values) => new(trial, values);

    private static readonly StoppingPolicy Median = new(StoppingRule.Median, GraceEpochs: 2, MinTrials: 2);

    [Fact]
    public void The_median_rule_stops_a_trial_whose_best_is_below_the_median_of_the_others_running_averages()
    {
        TrialCurve[] others = [Curve(1, 0.5, 0.7, 0.8), Curve(2, 0.6, 0.8, 0.9), Curve(3, 0.2, 0.3, 0.3)];

        // Running averages over 2 epochs: 0.6, 0.7, 0.25 → median 0.6. A best of 0.55 is below it; 0.65 is not.
        var stopped = EarlyStopping.Judge(Median, Curve(4, 0.5, 0.55), others, maxEpochs: 3, "testAccuracy", maximise: true);
        Assert.NotNull(stopped);
        Assert.Equal("median", stopped.Rule);
        Assert.Contains("0.55", stopped.Reason);
        Assert.Contains("0.6", stopped.Reason);
        Assert.Null(EarlyStopping.Judge(Median, Curve(4, 0.65, 0.4), others, 3, "testAccuracy", true));
    }

    [Fact]
    public void The_median_rule_waits_for_its_grace_epochs_and_for_enough_other_trials()
    {
        TrialCurve[] others = [Curve(1, 0.9, 0.9, 0.9), Curve(2, 0.9, 0.9, 0.9)];
        Assert.Null(EarlyStopping.Judge(Median, Curve(3, 0.1), others, 3, "testAccuracy", true)); // epoch 1 < grace 2
        Assert.NotNull(EarlyStopping.Judge(Median, Curve(3, 0.1, 0.1), others, 3, "testAccuracy", true));

        // Only one other trial has reached epoch 2: not judged (MinTrials 2).
        Assert.Null(EarlyStopping.Judge(Median, Curve(3, 0.1, 0.1), [Curve(1, 0.9, 0.9), Curve(2, 0.9)], 3, "testAccuracy", true));

        // Its own earlier curve is never a peer; the last epoch is not judged (the trial is finishing anyway).
        Assert.Null(EarlyStopping.Judge(Median, Curve(3, 0.1, 0.1), [Curve(3, 0.9, 0.9), Curve(1, 0.9, 0.9)], 3, "testAccuracy", true));
        Assert.Null(EarlyStopping.Judge(Median, Curve(3, 0.1, 0.1, 0.1), others, 3, "testAccuracy", true));
    }

    [Fact]
    public void A_minimised_metric_is_compared_negated_and_reported_as_it_is()
    {
        // Losses as the sweep passes them: negated (higher is better). Peers' losses 0.5 and 0.4; this one's best 2.0.
        var verdict = EarlyStopping.Judge(Median, Curve(3, -2.3, -2.0), [Curve(1, -0.6, -0.4), Curve(2, -0.5, -0.3)], 5, "trainLoss", maximise: false);
        Assert.NotNull(verdict);
        Assert.Contains("by epoch 2, 2, is above the median 0.45", verdict.Reason);
    }

    [Fact]
    public void Asha_keeps_only_the_top_third_at_each_rung()
    {
        var asha = new StoppingPolicy(StoppingRule.Asha, GraceEpochs: 1, MinTrials: 2, ReductionFactor: 3);
        Assert.Equal([1, 3, 9], asha.Rungs(27));
        TrialCurve[] others = [Curve(1, 0.2, 0.3, 0.4), Curve(2, 0.5, 0.6, 0.7), Curve(3, 0.8, 0.85, 0.9)];

        // At rung 1 the others' values are 0.2, 0.5, 0.8: the 2/3 quantile (linear) is 0.6.
        Assert.Equal(0.6, EarlyStopping.Quantile([0.2, 0.5, 0.8], 2.0 / 3), 9);
        var stopped = EarlyStopping.Judge(asha, Curve(4, 0.55), others, 27, "testAccuracy", true);
        Assert.NotNull(stopped);
        Assert.Equal("asha", stopped.Rule);
        Assert.Null(EarlyStopping.Judge(asha, Curve(4, 0.65), others, 27, "testAccuracy", true));

        // Epoch 2 is no rung: not judged, however bad; epoch 3 is.
        Assert.Null(EarlyStopping.Judge(asha, Curve(4, 0.65, 0.01), others, 27, "testAccuracy", true));
        Assert.NotNull(EarlyStopping.Judge(asha, Curve(4, 0.65, 0.7, 0.5), others, 27, "testAccuracy", true));
    }

    [Fact]
    public void A_grid_lists_every_combination_in_order_with_the_last_setting_fastest()
    {
        var space = new[]
        {
            new SearchParameter("learningRate", ParameterKind.Number, [Json("0.01"), Json("0.1")]),
            new SearchParameter("batchSize", ParameterKind.Integer, [Json("16"), Json("32"), Json("64")]),
        };
        Assert.Equal(6, SearchSpace.GridSize(space));
        var grid = SearchSpace.Grid(space);
        Assert.Equal([1, 2, 3, 4, 5, 6], grid.Select(t => t.Trial));
        Assert.Equal(["0.01/16", "0.01/32", "0.01/64", "0.1/16", "0.1/32", "0.1/64"],
            grid.Select(t => $"{t.Values["learningRate"].GetRawText()}/{t.Values["batchSize"].GetRawText()}"));
    }

    [Fact]
    public void Random_search_is_seeded_and_stays_in_its_ranges()
    {
        var space = new[]
        {
            new SearchParameter("learningRate", ParameterKind.Number, null, 1e-4, 1, Log: true),
            new SearchParameter("epochs", ParameterKind.Integer, null, 2, 5),
            new SearchParameter("recipe", ParameterKind.Text, [Json("\"d2l\""), Json("\"robust\"")]),
        };
        var a = SearchSpace.Random(space, 200, seed: 5);
        var b = SearchSpace.Random(space, 200, seed: 5);
        Assert.Equal(a.Select(t => string.Join(",", t.Values.Values.Select(v => v.GetRawText()))), b.Select(t => string.Join(",", t.Values.Values.Select(v => v.GetRawText()))));
        var rates = a.Select(t => t.Values["learningRate"].GetDouble()).ToList();
        Assert.All(rates, r => Assert.InRange(r, 1e-4, 1));

        // Log-uniform: about a quarter of the draws in each decade of four, not nine tenths in the top one.
        Assert.InRange(rates.Count(r => r < 1e-3), 25, 75);
        Assert.All(a, t => Assert.InRange(t.Values["epochs"].GetInt64(), 2, 5));
        Assert.Equal(4, a.Select(t => t.Values["epochs"].GetInt64()).Distinct().Count());
        Assert.Equal(2, a.Select(t => t.Values["recipe"].GetString()).Distinct().Count());
    }

    [Fact]
    public void A_parameter_definition_that_cannot_be_run_is_refused_with_its_reason()
    {
        Assert.Contains("list of values", SearchSpace.Problem(new SearchParameter("learningRate", ParameterKind.Number, null, 0.1, 1), grid: true));
        Assert.Contains("min > 0", SearchSpace.Problem(new SearchParameter("learningRate", ParameterKind.Number, null, 0, 1, Log: true), grid: false));
        Assert.Contains("not a number", SearchSpace.Problem(new SearchParameter("learningRate", ParameterKind.Number, [Json("\"fast\"")]), grid: true));
        Assert.Contains("not an integer", SearchSpace.Problem(new SearchParameter("batchSize", ParameterKind.Integer, [Json("16.5")]), grid: true));
        Assert.Contains("not a range", SearchSpace.Problem(new SearchParameter("recipe", ParameterKind.Text, null, 1, 2), grid: false));
        Assert.Contains("1 to 100", SearchSpace.Problem(new SearchParameter("seed", ParameterKind.Integer, []), grid: true));
        Assert.Null(SearchSpace.Problem(new SearchParameter("flip", ParameterKind.Boolean, [Json("true"), Json("false")]), grid: true));
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();
}
