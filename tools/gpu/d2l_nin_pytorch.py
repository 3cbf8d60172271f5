#!/usr/bin/env python3
"""The PyTorch anchor of the GPU check: d2l's NiN recipe in plain PyTorch, fed the way Nin's training
loop feeds its network, so the two speeds compare like for like.

- d2l's network (nin_block x4, max-pools, dropout 0.5, global average pooling) and init (Xavier-uniform);
- SGD at lr 0.1 (no momentum, no weight decay) on cross-entropy, batch 128, 224 px, Fashion-MNIST;
- the whole dataset copied to the device once as uint8; each batch gathered, scaled to [0, 1] and
  resized bilinearly (align_corners=False) there, as Nin's Preprocess.ToNetworkInput does;
- cuDNN benchmark mode on CUDA (fixed input size); synchronisation only around the timed regions;
- test accuracy after every epoch.

Prints one line per epoch and, with --json FILE, writes the figures the check's summary reads. `./nin bench train
--compare-pytorch` runs it with --device cpu on the same images as Nin's loop; --breakdown (CPU only) also times the
data step (gather, scale, resize), forward, backward and optimizer step of every batch separately.
Needs only PyTorch (and NumPy); reads the standard IDX files (gzip or raw) from --data.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise SystemExit(f"{stem}[.gz] not found in {folder}")


def nin_block(in_channels, out_channels, kernel, stride, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU())


def d2l_nin(channels, classes):
    net = nn.Sequential(
        nin_block(channels, 96, 11, 4, 0), nn.MaxPool2d(3, 2),
        nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2),
        nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2),
        nn.Dropout(0.5),
        nin_block(384, classes, 3, 1, 1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return net


def to_input(images_u8, size):
    x = images_u8.float().div_(255.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--max-train", type=int, default=0)
    p.add_argument("--max-test", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--breakdown", action="store_true", help="time data, forward, backward and step per batch (CPU)")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)

    train_x = read_idx(a.data, "train-images-idx3-ubyte")
    train_y = read_idx(a.data, "train-labels-idx1-ubyte")
    test_x = read_idx(a.data, "t10k-images-idx3-ubyte")
    test_y = read_idx(a.data, "t10k-labels-idx1-ubyte")
    if a.max_train:
        train_x, train_y = train_x[:a.max_train], train_y[:a.max_train]
    if a.max_test:
        test_x, test_y = test_x[:a.max_test], test_y[:a.max_test]
    # Once to the device as bytes, N x 1 x 28 x 28.
    train_x = torch.from_numpy(train_x.copy()).unsqueeze(1).to(device)
    train_y = torch.from_numpy(train_y.astype(np.int64)).to(device)
    test_x = torch.from_numpy(test_x.copy()).unsqueeze(1).to(device)
    test_y = torch.from_numpy(test_y.astype(np.int64)).to(device)

    net = d2l_nin(1, 10).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    n = train_x.shape[0]
    epochs = []
    first_batch = None
    phases = {}  # --breakdown: seconds per phase over all epochs (on the CPU every operator is synchronous)
    print(f"pytorch {torch.__version__}: d2l NiN, {n}/{test_x.shape[0]} images, {a.image_size} px, batch {a.batch}, "
          f"lr {a.lr}, device {device}, {torch.get_num_threads()} threads", flush=True)
    for epoch in range(1, a.epochs + 1):
        net.train()
        g = torch.Generator(device="cpu").manual_seed(a.seed * 1000 + epoch)
        order = torch.randperm(n, generator=g).to(device)
        loss_sum = torch.zeros((), device=device)
        right = torch.zeros((), device=device, dtype=torch.int64)
        sync(device)
        t0 = time.perf_counter()
        for start in range(0, n, a.batch):
            t_batch = time.perf_counter()
            idx = order[start:start + a.batch]
            x = to_input(train_x[idx], a.image_size)
            y = train_y[idx]
            t_data = time.perf_counter()
            out = net(x)
            loss = F.cross_entropy(out, y)
            t_forward = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t_backward = time.perf_counter()
            opt.step()
            loss_sum += loss.detach() * y.shape[0]
            right += (out.argmax(1) == y).sum()
            if a.breakdown:
                t_step = time.perf_counter()
                for key, value in (("data", t_data - t_batch), ("forward", t_forward - t_data),
                                   ("backward", t_backward - t_forward), ("step", t_step - t_backward)):
                    phases[key] = phases.get(key, 0.0) + value
                if start == 0 and epoch == 1:
                    first_batch = t_step - t_batch
        sync(device)
        seconds = time.perf_counter() - t0
        net.eval()
        correct = 0
        with torch.inference_mode():
            for start in range(0, test_x.shape[0], 256):
                out = net(to_input(test_x[start:start + 256], a.image_size))
                correct += (out.argmax(1) == test_y[start:start + 256]).sum().item()
        e = {"epoch": epoch, "trainLoss": loss_sum.item() / n, "trainAccuracy": right.item() / n,
             "testAccuracy": correct / test_x.shape[0], "imagesPerSecond": n / seconds, "seconds": seconds}
        epochs.append(e)
        print(f"epoch {epoch}: loss {e['trainLoss']:.4f} train acc {e['trainAccuracy']:.4f} "
              f"test acc {e['testAccuracy']:.4f} {e['imagesPerSecond']:.1f} img/s {seconds:.1f} s", flush=True)

    steady = [e["imagesPerSecond"] for e in epochs[1:]] or [epochs[0]["imagesPerSecond"]]
    result = {
        "engine": f"pytorch {torch.__version__}",
        "device": str(device),
        "testAccuracy": epochs[-1]["testAccuracy"],
        "imagesPerSecond": float(np.median(steady)),
        "firstEpochImagesPerSecond": epochs[0]["imagesPerSecond"],
        "peakDeviceMemoryMiB": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "breakdown": dict({k: v / len(epochs) for k, v in phases.items()}, firstBatch=first_batch) if a.breakdown else None,
    }
    print(f"done: test accuracy {result['testAccuracy']:.4f}, {result['imagesPerSecond']:.1f} img/s (median of epochs after the first)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
