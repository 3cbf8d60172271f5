#!/usr/bin/env python3
"""Makes the PyTorch fixture the import/export tests use: d2l's NiN (nn.Sequential, as in
https://d2l.ai/chapter_convolutional-modern/nin.html) for Fashion-MNIST, saved with
torch.save(net.state_dict()), plus PyTorch's own outputs on a few test images.

The weights are random, not trained (training on the shared 2-core machine took minutes per 20 steps): He
initialisation and random biases, so every layer carries signal and the outputs differ clearly between
images and classes. The fixture tests how weights travel, not accuracy.

Run inside the Debian 13 root (python3-torch from apt), from the repository root:
  ./nin exec python3 Nin.Api.Tests/Fixtures/pytorch/make_fixture.py ../shared/datasets/fashion-mnist
Writes nin_fashion_mnist.pt and expected.json beside this script. The tests never run Python.
"""
import gzip, json, os, sys
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 72
TEST_INDICES = list(range(8))
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def d2l_nin():
    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten())


def idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise SystemExit(f"{stem} not found in {folder}")


def preprocess(pixels):  # N×28×28 uint8 -> N×1×S×S float, as the service does: x/255, bilinear resize
    x = torch.from_numpy(pixels.copy()).float().div(255).unsqueeze(1)
    return F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/fashion-mnist"
    here = os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    torch.set_num_threads(2)
    test_x, test_y = idx(find(data, "t10k-images-idx3-ubyte")), idx(find(data, "t10k-labels-idx1-ubyte"))

    net = d2l_nin()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.uniform_(m.bias, -0.2, 0.2)
        # Larger, mostly positive class scores, so few are cut to 0 by the last ReLU and the softmax is far from uniform.
        net[7][4].weight.mul_(4)
        nn.init.uniform_(net[7][4].bias, 0.0, 2.0)

    net.eval()
    with torch.no_grad():
        x = preprocess(test_x[TEST_INDICES])
        logits = net(x)
        probabilities = F.softmax(logits, dim=1)

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    torch.save(state, os.path.join(here, "nin_fashion_mnist.pt"))
    expected = {
        "about": "PyTorch's outputs for d2l's NiN in nin_fashion_mnist.pt (made by make_fixture.py)",
        "torch": torch.__version__,
        "imageSize": IMAGE_SIZE,
        "channels": 1,
        "classes": CLASSES,
        "testIndices": TEST_INDICES,
        "labels": [int(test_y[i]) for i in TEST_INDICES],
        "keys": list(state.keys()),
        "logits": logits.tolist(),
        "probabilities": probabilities.tolist(),
    }
    with open(os.path.join(here, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {len(state)} tensors; probabilities {probabilities.numpy().round(3)}")


if __name__ == "__main__":
    main()
