using Nin.Bench;

// ./nin bench <command> [--options]: figures printed, never asserted.
var command = args.FirstOrDefault();
var rest = new Args(args.Skip(1).ToArray());
return command switch
{
    "train" => TrainCommand.Run(rest),
    "predict" => await PredictCommand.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: ./nin bench <command> [options]
          train    train with the service's loop; --dataset --epochs --batch --lr --momentum --weight-decay
                   --image-size --seed --max-train --max-test --device --data DIR [--out DIR --name N]
                   --baseline-steps N (also time N synthetic steps and print the ratio)
          predict  raw forward vs HTTP /predict on loopback: --image-size (224) --seconds (5) --batch (16)
                   --device --data DIR --port --api PATH/Nin.Api.dll
        """);
    return 2;
}
