using Nin.Bench;

// ./nin bench <command> [--options]: figures printed, never asserted.
var command = args.FirstOrDefault();
var rest = new Args(args.Skip(1).ToArray());
try
{
    return command switch
    {
        "train" => TrainCommand.Run(rest),
        "predict" => await PredictCommand.RunAsync(rest),
        "forward" => ForwardCommand.Run(rest),
        "quantize" => QuantizeCommand.Run(rest),
        "cam" => CamCommand.Run(rest),
        "sweep" => SweepCommand.Run(rest),
        "hostile" => await HostileCommand.RunAsync(rest),
        "memory" => await MemoryCommand.RunAsync(rest),
        _ => Usage(),
    };
}
catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or DirectoryNotFoundException or FormatException)
{
    // What the user gave is wrong or missing (an option, a dataset folder): say so in one line, not with a stack trace.
    Console.Error.WriteLine($"bench {command}: {ex.Message}");
    return 2;
}

static int Usage()
{
    Console.Error.WriteLine("""
        usage: ./nin bench <command> [options]
          train    train with the service's loop; --dataset --architecture (nin) --epochs --batch --lr --momentum --weight-decay
                   --image-size --seed --max-train --max-test --device --data DIR [--out DIR --name N]
                   --baseline-steps N (also time N synthetic steps and print the ratio)
          train    ... --continue-from DIR (start from a saved model after its recorded epochs; fresh optimizer state)
          train    ... --breakdown (time data, forward, backward, step per batch) --json FILE (the figures, as the anchor's --json)
          train    --compare-pytorch [--rounds 5 --max-train 2560 --max-test 256 --image-size 96 --batch 128 --threads 2 --epochs 1
                   --breakdown --nin-env "K=V ..." --pytorch-env "K=V ..." --python python3 --script PATH] --data DIR: Nin's loop
                   against tools/gpu/d2l_nin_pytorch.py --device cpu on the same images, interleaved rounds: img/s and ratio
          train    --presets d2l,robust --seeds 1,2,3 [--synthetic --classes 4 --per-class 100 | --dataset D --image-size 96
                   --max-train N --max-test N] [--epochs --batch --lr override the presets]: test accuracy per preset and seed
          predict  raw forward (torch and onnxruntime) vs HTTP /predict on loopback, interleaved: --image-size (224; a list:
                   96,224) --engine (auto; a list: torch,onnxruntime) --precision (fp32; fp32,int8: both interleaved, with int8's
                   ratios to fp32) --seconds (10 per measure) --rounds (5) --batch (16)
                   --clients (1,4,16,64) --warmup (3) --device --data DIR --port (first of one per engine)
                   --api PATH/Nin.Api.dll --serve "Serving:Workers=1 ..." (settings for the service under test)
                   then overload (open-loop arrivals at 2x and 4x capacity: goodput, admitted p99, share shed;
                   --overload-seconds 5, 0 skips; --overload-connections 2048, the flood's connection pool) and swap (--swaps 10 activations while 8 clients loop /predict:
                   failed requests and p99; --swap-pause 1 s; 0 skips)
          hostile  /predict with 64 images at the limits per request (40 MP at 20:1 both ways, 40 MP square PNG and JPEG):
                   the service's peak resident memory vs its baseline; --clients (1,4) --rounds (3) --image-size (96) --port
          memory   resident memory of a long-lived service across training runs (every other one cancelled mid-epoch), one
                   service per allocator setup, runs interleaved: --variants (glibc,shipped; also arena1, trim) --runs (20)
                   --images (1280) --image-size (96) --batch (64) --predict-seconds (10) --data DIR --port (5160)
          forward  raw network only, W workers x T threads per batch size: --architecture (nin) --configs (1x2,2x1) --batches
                   (1,2,4,8,16,32) --seconds (3) --image-size (224) --threads; --precision fp32,int8: ONNX Runtime instead of
                   Torch, fp32 and int8 interleaved with their ratio (--data DIR for the calibration images)
          quantize int8 with the service's quantizer, fp32 vs int8 accuracy on the whole test split and raw speed:
                   --model DIR (a checkpoint folder, quantized in place, on its built-in dataset; --data DIR --max-test N)
                   or --synthetic (trains on shapes first: --classes 4 --per-class 100 --epochs --preset robust)
                   --calibration (256) --seed (0) --margin (0.5 points) --batch (16) --seconds (6)
          sweep    what early stopping saves: a learning-rate grid of one preset run as a sweep (the service's median or
                   ASHA rule after every epoch) and in full, both measured: best test accuracy, CPU and wall seconds of each;
                   --synthetic (default; --classes 4 --per-class 100) or --dataset D --data DIR --max-train --max-test
                   --preset (robust) --lrs (0.001,…,3) --epochs (8) --rule (median|asha|none) --grace (1) --min-trials (2)
                   --eta (3) --seed (1) --image-size --threads
          cam      where a model's class activation maps lie on Fashion-MNIST test images (predicted class, the service's
                   explainer): shares of the map's mass on the object, its 1 px dilation and bounding box; then letterboxed
                   (content vs padding): --model DIR (the shipped default model) --data DIR --count (500) --image-size (the
                   model's) --canvas (56) --batch (25)
        """);
    return 2;
}
