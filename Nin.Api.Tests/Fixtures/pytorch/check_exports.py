#!/usr/bin/env python3
"""Cross-checks the service's exports with the real tools (run by hand, never by the tests): PyTorch's torch.load
(weights_only, the default since 2.6) + d2l's strict load_state_dict, a plain safetensors reader, onnx's checker and
Python's ONNX Runtime, each against PyTorch's outputs in expected.json. Import the fixture first, then export:
  curl -F weights=@nin_fashion_mnist.pt -F classes='[...]' -F imageSize=72 http://127.0.0.1:5080/models/d2l/versions
  for f in pytorch:pt safetensors:safetensors onnx:onnx; do
    curl -o /tmp/export.${f#*:} "http://127.0.0.1:5080/models/d2l/versions/1/export?format=${f%:*}"; done
  ./nin exec python3 Nin.Api.Tests/Fixtures/pytorch/check_exports.py /tmp/export ../shared/datasets/fashion-mnist
"""
import json, sys, torch, numpy as np
EXPORTS = sys.argv[1] if len(sys.argv) > 1 else "/tmp/export"
DATA = sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets/fashion-mnist"
sys.path.insert(0, "Nin.Api.Tests/Fixtures/pytorch")
import make_fixture as m
exp = json.load(open("Nin.Api.Tests/Fixtures/pytorch/expected.json"))
test_x = m.idx(m.find(DATA, "t10k-images-idx3-ubyte"))
m.IMAGE_SIZE = exp["imageSize"]
x = m.preprocess(test_x[exp["testIndices"]])
net = m.d2l_nin()
net.load_state_dict(torch.load(EXPORTS + ".pt"))  # torch 2.6: weights_only=True by default
net.eval()
with torch.no_grad():
    p = torch.softmax(net(x), 1).numpy()
print("pytorch export: torch.load + load_state_dict(strict) ok; max diff vs fixture", np.abs(p - np.array(exp["probabilities"])).max())
import struct
raw = open(EXPORTS + ".safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8+n])
state = {k: torch.from_numpy(np.frombuffer(raw[8+n+v["data_offsets"][0]:8+n+v["data_offsets"][1]], dtype=np.float32).reshape(v["shape"]).copy()) for k, v in header.items() if k != "__metadata__"}
net2 = m.d2l_nin(); net2.load_state_dict(state); net2.eval()
with torch.no_grad():
    p2 = torch.softmax(net2(x), 1).numpy()
print("safetensors export: max diff", np.abs(p2 - np.array(exp["probabilities"])).max(), "metadata keys", list(header["__metadata__"].keys()))
import onnx, onnxruntime as ort
model = onnx.load(EXPORTS + ".onnx"); onnx.checker.check_model(model, full_check=True)
print("onnx checker ok; opset", model.opset_import[0].version, "ir", model.ir_version, "props", [p.key for p in model.metadata_props])
s = ort.InferenceSession(EXPORTS + ".onnx")
p3 = s.run(["probabilities"], {"input": x.numpy()})[0]
print("python onnxruntime", ort.__version__, "max diff", np.abs(p3 - np.array(exp["probabilities"])).max())
