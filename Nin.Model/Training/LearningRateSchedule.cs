namespace Nin.Model.Training;

/// <summary>How the learning rate moves over a run; a function of the step, so a resumed run follows the same curve.</summary>
public enum LearningRateSchedule
{
    /// <summary>d2l: the same rate throughout.</summary>
    Constant,

    /// <summary>
    /// Smith's one-cycle, as PyTorch's OneCycleLR with its defaults: from peak/25 up to the peak over the first
    /// 30 % of the steps, then cosine down to peak/25/10⁴.
    /// </summary>
    OneCycle,

    /// <summary>Linear warm-up from 0 over the first 5 % of the steps (at least one), then cosine down to 0.</summary>
    Cosine,
}

public static class LearningRateSchedules
{
    public static IReadOnlyList<string> Names { get; } = ["constant", "one-cycle", "cosine"];

    public static string Name(LearningRateSchedule schedule) => schedule switch
    {
        LearningRateSchedule.OneCycle => "one-cycle",
        LearningRateSchedule.Cosine => "cosine",
        _ => "constant",
    };

    public static LearningRateSchedule? Parse(string? name) => name?.ToLowerInvariant() switch
    {
        "constant" => LearningRateSchedule.Constant,
        "one-cycle" or "onecycle" => LearningRateSchedule.OneCycle,
        "cosine" => LearningRateSchedule.Cosine,
        _ => null,
    };

    /// <summary>The rate for step <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>.</summary>
    public static double At(LearningRateSchedule schedule, double peak, long step, long totalSteps)
    {
        var last = Math.Max(1, totalSteps - 1);
        static double Cos(double from, double to, double t) => to + ((from - to) * (1 + Math.Cos(Math.PI * Math.Clamp(t, 0, 1))) / 2);
        switch (schedule)
        {
            case LearningRateSchedule.OneCycle:
            {
                var initial = peak / 25;
                var final = initial / 1e4;
                var up = Math.Max(1, (long)(0.3 * last));
                return step <= up ? Cos(initial, peak, (double)step / up) : Cos(peak, final, (double)(step - up) / Math.Max(1, last - up));
            }

            case LearningRateSchedule.Cosine:
            {
                var warmup = Math.Max(1, (long)Math.Ceiling(0.05 * totalSteps));
                return step < warmup ? peak * (step + 1) / warmup : Cos(peak, 0, (double)(step - warmup) / Math.Max(1, last - warmup + 1));
            }

            default:
                return peak;
        }
    }
}
