using Nin.Model.Network;

namespace Nin.Model.Training;

/// <summary>A named set of training choices; a request's explicit fields override any of them.</summary>
public sealed record RecipePreset(
    string Name,
    string Description,
    string Architecture,
    int Epochs,
    int BatchSize,
    double LearningRate,
    double Momentum,
    double WeightDecay,
    LearningRateSchedule Schedule,
    double Shift,
    bool Flip,
    double LabelSmoothing);

/// <summary>
/// The presets: <c>d2l</c>, the book's recipe exactly (the NiN, SGD at a constant lr 0.1, nothing else), and
/// <c>robust</c>, what learns small own datasets reliably (nin-bn, one-cycle SGD to lr 0.1 with momentum 0.9
/// and weight decay 1e-4, random shifts of ±10 % and horizontal flips).
/// </summary>
public static class TrainingRecipes
{
    public const string D2lName = "d2l";
    public const string RobustName = "robust";

    public static readonly RecipePreset D2l = new(
        D2lName,
        "d2l.ai's recipe exactly: the NiN, SGD at a constant learning rate 0.1, no momentum, no augmentation.",
        NetworkArchitectures.NinName, Epochs: 10, BatchSize: 128, LearningRate: 0.1, Momentum: 0, WeightDecay: 0,
        LearningRateSchedule.Constant, Shift: 0, Flip: false, LabelSmoothing: 0);

    public static readonly RecipePreset Robust = new(
        RobustName,
        "nin-bn, one-cycle SGD up to lr 0.1 (momentum 0.9, weight decay 1e-4), random shifts of ±10 % and horizontal flips: learns small own datasets.",
        NetworkArchitectures.NinBnName, Epochs: 30, BatchSize: 32, LearningRate: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
        LearningRateSchedule.OneCycle, Shift: 0.1, Flip: true, LabelSmoothing: 0);

    public static IReadOnlyList<RecipePreset> All { get; } = [D2l, Robust];

    public static IReadOnlyList<string> Names { get; } = [.. All.Select(r => r.Name)];

    public static RecipePreset? Find(string? name) =>
        All.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The preset's options (image size and seed are the caller's).</summary>
    public static TrainingOptions Options(RecipePreset preset, int imageSize, long seed) => new()
    {
        Recipe = preset.Name,
        Epochs = preset.Epochs,
        BatchSize = preset.BatchSize,
        LearningRate = preset.LearningRate,
        Momentum = preset.Momentum,
        WeightDecay = preset.WeightDecay,
        Schedule = preset.Schedule,
        Shift = preset.Shift,
        Flip = preset.Flip,
        LabelSmoothing = preset.LabelSmoothing,
        ImageSize = imageSize,
        Seed = seed,
    };
}
