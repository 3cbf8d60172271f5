#!/usr/bin/env python3
"""Makes the class activation map fixture: PyTorch's own CAM and Grad-CAM of d2l's NiN with the weights of
nin_fashion_mnist.pt, on the test images of expected.json, at three input sizes that call for different methods:
  72 px  -> class maps 1x1: Grad-CAM at the deepest stage of at least 7x7 (net[2], the second NiN block, 7x7)
  224 px -> class maps 5x5: Grad-CAM at net[4], the third NiN block (12x12)
  320 px -> class maps 8x8: CAM, the predicted class's own map (net[7])
Written independently of the service's C#: forward and tensor hooks, as Grad-CAM implementations for PyTorch do.
The explained class is PyTorch's own top-1, and again class i % 10 for image i (a requested class). Maps: ReLU, then divided by their largest value.

Run inside the Debian 13 root (python3-torch from apt), from the repository root:
  ./nin exec python3 Nin.Api.Tests/Fixtures/pytorch/make_cam_fixture.py ../shared/datasets/fashion-mnist
Writes cam_expected.json beside this script. The tests never run Python.
"""
import base64, json, os, sys
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixture as m

MIN_SIDE = 7


def grad_cam(net, x, layer_index, target=None):
    saved = {}
    handle = net[layer_index].register_forward_hook(lambda mod, inp, out: saved.__setitem__("a", out))
    logits = net(x)
    handle.remove()
    target = logits.argmax(1) if target is None else target
    a = saved["a"]
    grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), a)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(1))
    return cam.detach(), target, logits.detach()


def class_cam(net, x, layer_index, target=None):
    saved = {}
    handle = net[layer_index].register_forward_hook(lambda mod, inp, out: saved.__setitem__("a", out))
    with torch.no_grad():
        logits = net(x)
    handle.remove()
    target = logits.argmax(1) if target is None else target
    maps = saved["a"][torch.arange(x.shape[0]), target]
    return F.relu(maps), target, logits


def normalise(cam):
    peak = cam.flatten(1).max(1).values.clamp_min(1e-30)
    return cam / peak[:, None, None]


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/fashion-mnist"
    here = os.path.dirname(os.path.abspath(__file__))
    expected = json.load(open(os.path.join(here, "expected.json")))
    indices = expected["testIndices"]
    pixels = m.idx(m.find(data, "t10k-images-idx3-ubyte"))[indices]
    net = m.d2l_nin()
    net.load_state_dict(torch.load(os.path.join(here, "nin_fashion_mnist.pt")))
    net.eval()
    out = {"about": "PyTorch's CAM / Grad-CAM of d2l's NiN with nin_fashion_mnist.pt (made by make_cam_fixture.py)",
           "torch": torch.__version__, "testIndices": indices,
           "pixels": base64.b64encode(pixels.tobytes()).decode(), "sizes": []}
    for size, method, layer in [(72, "grad-cam", 2), (224, "grad-cam", 4), (320, "cam", 7)]:
        m.IMAGE_SIZE = size
        x = m.preprocess(pixels)
        cam, target, logits = (class_cam if method == "cam" else grad_cam)(net, x, layer)
        assert cam.shape[1] >= MIN_SIDE, (size, cam.shape)
        maps = normalise(cam)
        requested = torch.arange(x.shape[0]) % 10
        cam2, _, _ = (class_cam if method == "cam" else grad_cam)(net, x, layer, requested)
        out["sizes"].append({"imageSize": size, "method": method, "stage": layer, "height": cam.shape[1], "width": cam.shape[2],
                             "classes": target.tolist(), "peaks": cam.flatten(1).max(1).values.tolist(),
                             "maps": maps.flatten(1).tolist(),
                             "requestedClasses": requested.tolist(), "requestedPeaks": cam2.flatten(1).max(1).values.tolist(),
                             "requestedMaps": normalise(cam2).flatten(1).tolist()})
        print(size, method, tuple(cam.shape), "classes", target.tolist(), "zero maps", int((cam.flatten(1).max(1).values == 0).sum()))
    with open(os.path.join(here, "cam_expected.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
