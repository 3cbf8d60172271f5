using Nin.Bench;

// ./nin bench <command> [--options]: figures printed, never asserted.
var command = args.FirstOrDefault();
var rest = new Args(args.Skip(1).ToArray());
return command switch
{
    "train" => TrainCommand.Run(rest),
    "predict" => await PredictCommand.RunAsync(rest),
    "forward" => ForwardCommand.Run(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: ./nin bench <command> [options]
          train    train with the service's loop; --dataset --epochs --batch --lr --momentum --weight-decay
                   --image-size --seed --max-train --max-test --device --data DIR [--out DIR --name N]
                   --baseline-steps N (also time N synthetic steps and print the ratio)
          train    ... --continue-from DIR (start from a saved model after its recorded epochs; fresh optimizer state)
          predict  raw forward (torch and onnxruntime) vs HTTP /predict on loopback, interleaved: --image-size (224; a list:
                   96,224) --engine (auto; a list: torch,onnxruntime) --seconds (10 per measure) --rounds (5) --batch (16)
                   --clients (1,4,16,64) --warmup (3) --device --data DIR --port (first of one per engine)
                   --api PATH/Nin.Api.dll --serve "Serving:Workers=1 ..." (settings for the service under test)
          forward  raw network only, W workers x T threads per batch size: --configs (1x2,2x1) --batches
                   (1,2,4,8,16,32) --seconds (3) --image-size (224) --threads
        """);
    return 2;
}
