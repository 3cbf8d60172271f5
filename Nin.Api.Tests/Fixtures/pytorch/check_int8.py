#!/usr/bin/env python3
"""Checks a version's int8 export with tools that are not Nin's (run by hand, never by the tests): onnx's checker,
Python's ONNX Runtime (which kernels its optimizer picks for the int8 graph), and fp32 against int8 accuracy on a whole
IDX test split, preprocessed by PyTorch's own bilinear resize rather than Nin's managed copy of it. Export both files
from a running service first, then run inside the Debian 13 root (apt: python3-onnx python3-onnxruntime python3-torch):
  curl -o /tmp/v.onnx      "http://127.0.0.1:5080/models/fashion-mnist/versions/1/export?format=onnx"
  curl -o /tmp/v.int8.onnx "http://127.0.0.1:5080/models/fashion-mnist/versions/1/export?format=onnx&precision=int8"
  ./nin exec python3 Nin.Api.Tests/Fixtures/pytorch/check_int8.py /tmp/v ../shared/datasets/fashion-mnist
"""
import json, sys, tempfile, time
import numpy as np
import onnx, onnxruntime as ort, torch

sys.path.insert(0, "Nin.Api.Tests/Fixtures/pytorch")
import make_fixture as m

BASE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/v"
DATA = sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets/fashion-mnist"

int8_model = onnx.load(BASE + ".int8.onnx")
onnx.checker.check_model(int8_model, full_check=True)
props = {p.key: p.value for p in int8_model.metadata_props}
m.IMAGE_SIZE = int(props["image_size"])
ops = sorted({n.op_type for n in int8_model.graph.node})
print("onnx checker (full) ok on the int8 file; opset", int8_model.opset_import[0].version, "ops", ops, "precision", props.get("precision"))

with tempfile.NamedTemporaryFile(suffix=".onnx") as optimized:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = optimized.name
    ort.InferenceSession(BASE + ".int8.onnx", so)
    kernels = [n.op_type for n in onnx.load(optimized.name).graph.node]
print("python onnxruntime", ort.__version__, "runs:", {k: kernels.count(k) for k in sorted(set(kernels))})

x_all = m.idx(m.find(DATA, "t10k-images-idx3-ubyte"))
y_all = m.idx(m.find(DATA, "t10k-labels-idx1-ubyte"))
fp32 = ort.InferenceSession(BASE + ".onnx")
int8 = ort.InferenceSession(BASE + ".int8.onnx")
right32 = right8 = agree = 0
max_diff = 0.0
for start in range(0, len(y_all), 500):
    x = m.preprocess(x_all[start:start + 500]).numpy()
    p = fp32.run(["probabilities"], {"input": x})[0]
    q = int8.run(["probabilities"], {"input": x})[0]
    y = y_all[start:start + 500]
    right32 += int((p.argmax(1) == y).sum()); right8 += int((q.argmax(1) == y).sum()); agree += int((p.argmax(1) == q.argmax(1)).sum())
    max_diff = max(max_diff, float(np.abs(p - q).max()))
n = len(y_all)
print(f"{n} test images: fp32 {right32 / n:.4f}, int8 {right8 / n:.4f} (fp32 - int8 = {100 * (right32 - right8) / n:.2f} points), agreement {agree / n:.4f}, max |p - q| {max_diff:.4f}")

one = m.preprocess(x_all[:1]).numpy()
for name, s in (("fp32", fp32), ("int8", int8)):
    for _ in range(20):
        s.run(["probabilities"], {"input": one})
    t = time.perf_counter(); k = 200
    for _ in range(k):
        s.run(["probabilities"], {"input": one})
    print(f"python onnxruntime {name}: {1000 * (time.perf_counter() - t) / k:.2f} ms per single image (default threads)")
