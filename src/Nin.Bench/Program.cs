using Nin.Bench;

// ./nin bench <command> [--options]: figures printed, never asserted.
var command = args.FirstOrDefault();
var rest = new Args(args.Skip(1).ToArray());
return command switch
{
    "train" => TrainCommand.Run(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: ./nin bench <command> [options]
          train    train with the service's loop; --dataset --epochs --batch --lr --momentum --weight-decay
                   --image-size --seed --max-train --max-test --device --data DIR [--out DIR --name N]
        """);
    return 2;
}
