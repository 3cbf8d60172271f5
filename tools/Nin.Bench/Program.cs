using Nin.Bench;

// ./nin bench <command> [--options]: figures printed, never asserted.
var command = args.FirstOrDefault();
var rest = new Args(args.Skip(1).ToArray());
return command switch
{
    "train" => TrainCommand.Run(rest),
    "predict" => await PredictCommand.RunAsync(rest),
    "forward" => ForwardCommand.Run(rest),
    "hostile" => await HostileCommand.RunAsync(rest),
    "memory" => await MemoryCommand.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: ./nin bench <command> [options]
          train    train with the service's loop; --dataset --architecture (nin) --epochs --batch --lr --momentum --weight-decay
                   --image-size --seed --max-train --max-test --device --data DIR [--out DIR --name N]
                   --baseline-steps N (also time N synthetic steps and print the ratio)
          train    ... --continue-from DIR (start from a saved model after its recorded epochs; fresh optimizer state)
          train    --presets d2l,robust --seeds 1,2,3 [--synthetic --classes 4 --per-class 100 | --dataset D --image-size 96
                   --max-train N --max-test N] [--epochs --batch --lr override the presets]: test accuracy per preset and seed
          predict  raw forward (torch and onnxruntime) vs HTTP /predict on loopback, interleaved: --image-size (224; a list:
                   96,224) --engine (auto; a list: torch,onnxruntime) --seconds (10 per measure) --rounds (5) --batch (16)
                   --clients (1,4,16,64) --warmup (3) --device --data DIR --port (first of one per engine)
                   --api PATH/Nin.Api.dll --serve "Serving:Workers=1 ..." (settings for the service under test)
          hostile  /predict with 64 images at the limits per request (40 MP at 20:1 both ways, 40 MP square PNG and JPEG):
                   the service's peak resident memory vs its baseline; --clients (1,4) --rounds (3) --image-size (96) --port
          memory   resident memory of a long-lived service across training runs (every other one cancelled mid-epoch), one
                   service per allocator setup, runs interleaved: --variants (glibc,shipped; also arena1, trim) --runs (20)
                   --images (1280) --image-size (96) --batch (64) --predict-seconds (10) --data DIR --port (5160)
          forward  raw network only, W workers x T threads per batch size: --architecture (nin) --configs (1x2,2x1) --batches
                   (1,2,4,8,16,32) --seconds (3) --image-size (224) --threads
        """);
    return 2;
}
