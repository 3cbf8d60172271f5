using Nin.Model.Data;
using Nin.Model.Network;

namespace Nin.Bench;

/// <summary>
/// The images a training bench runs on: <c>--synthetic</c>, the small own dataset of shapes (<c>--classes</c> 4,
/// <c>--per-class</c> 100, stored at <c>--stored-size</c> 32 px, <c>--data-seed</c> 7; trained at the NiN's smallest
/// input unless <c>--image-size</c>), or a built-in one (<c>--dataset</c>, <c>--data</c>, <c>--max-train</c>,
/// <c>--max-test</c>; <c>--image-size</c> 96).
/// </summary>
internal static class BenchData
{
    public static (DatasetSplit Data, int ImageSize, string What) Load(Args args, bool synthetic)
    {
        if (synthetic)
        {
            var (classes, perClass) = (args.Int("classes", 4), args.Int("per-class", 100));
            return (SyntheticShapes.Generate(classes, perClass, args.Int("stored-size", 32), args.Int("data-seed", 7)),
                args.Int("image-size", NetworkArchitectures.Nin.MinInputSize),
                $"synthetic shapes: {classes} classes × {perClass} pictures (RGB, dark on light)");
        }

        var dataset = BuiltInDatasets.Find(args.Get("dataset", "fashion-mnist")) ?? throw new ArgumentException("unknown --dataset");
        return (BuiltInDatasets.Load(args.Get("data", Environment.GetEnvironmentVariable("NIN_DATA_DIR") ?? "data"), dataset, args.IntOrNull("max-train"), args.IntOrNull("max-test")),
            args.Int("image-size", 96), dataset.Name);
    }
}
