#!/usr/bin/env python3
"""Writes PyTorch's results for distill's graph test networks.

Usage: gen.py DIR...

Each DIR holds what backendtest's TestTorchGoldens -update writes:
  spec.json            a distill model.Spec (JSON)
  weights.safetensors  its parameters and buffers (float32, state-dict names)
  inputs.safetensors   x (float32 [n, *input]) and y (int64 [n])
and receives expected.safetensors (float64), computed by an nn.Module that
is built generically from the spec, in float64 so that the goldens carry
PyTorch's semantics without float32 rounding:
  eval_logits          model.eval() logits (running statistics)
  train_logits         model.train() logits (batch statistics)
  loss                 mean cross-entropy of train_logits against y
  grad/<param>         d loss / d param, for every parameter
  running/<buffer>     every batchnorm buffer after that one train forward

It needs only torch (1.13 or later); safetensors files are read and written
here directly since the safetensors package may not be installed.
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT = "input"  # model.InputName

DTYPES = {
    "F32": (torch.float32, 4),
    "F64": (torch.float64, 8),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    data = raw[8 + hlen :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, _ = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors, metadata):
    """Writes float64 tensors in name order, atomically (temp file + rename)."""
    header = {"__metadata__": metadata}
    chunks, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float64).contiguous()
        b = t.numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def input_indices(spec):
    """For each layer, the indices of the layers it reads, -1 the input (as model.Spec.InputIndices)."""
    index, ins = {}, []
    for i, l in enumerate(spec["layers"]):
        names = l.get("inputs") or ([spec["layers"][i - 1]["name"]] if i > 0 else [INPUT])
        idx = [-1 if n == INPUT else index[n] for n in names]
        ins.append(idx)
        index[l["name"]] = i
    return ins


class Graph(nn.Module):
    """A distill spec as an nn.Module: modules with state sit at their
    dotted names (so state_dict keys are distill's tensor names); forward
    walks the layers in order, each reading the outputs its inputs name."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.ins = input_indices(spec)
        self.ops = []
        shape = {-1: list(spec["input"])}
        for i, l in enumerate(spec["layers"]):
            in_shape = shape[self.ins[i][0]]
            op, stateful = self.make(l, in_shape)
            if stateful:
                self.place(l["name"], op)
            self.ops.append(op)
            with torch.no_grad():
                probe = [torch.zeros([2] + shape[j], dtype=torch.float64) for j in self.ins[i]]
                op.double()
                was = op.training
                op.eval()
                y = op(*probe) if len(probe) > 1 else op(probe[0])
                op.train(was)
            shape[i] = list(y.shape[1:])

    def place(self, name, module):
        parts = name.split(".")
        parent = self
        for p in parts[:-1]:
            if p not in parent._modules:
                parent.add_module(p, nn.Module())
            parent = parent._modules[p]
        held = parent._modules.get(parts[-1])
        if held is not None:
            # A placeholder made for deeper names ("layer2.0.conv1" before
            # the block output "layer2.0", a batchnorm where the block has
            # no shortcut): the layer's module takes over its children.
            if type(held) is not nn.Module:
                raise ValueError(f"layer {name!r}: two layers with one name")
            for child, m in held._modules.items():
                module.add_module(child, m)
        parent.add_module(parts[-1], module)

    @staticmethod
    def make(l, in_shape):
        k = l["kind"]
        if k == "conv2d":
            return nn.Conv2d(in_shape[0], l["out"], l["kernel"], stride=max(l.get("stride", 0), 1),
                             padding=l.get("padding", 0), groups=max(l.get("groups", 0), 1),
                             bias=not l.get("no_bias", False)), True
        if k == "linear":
            return nn.Linear(in_shape[0], l["out"], bias=not l.get("no_bias", False)), True
        if k == "batchnorm":
            bn = nn.BatchNorm1d if len(in_shape) == 1 else nn.BatchNorm2d
            return bn(in_shape[0], eps=l.get("eps") or 1e-5, momentum=l.get("momentum") or 0.1), True
        if k == "add":
            return Add(), False
        if k == "maxpool":
            return nn.MaxPool2d(l["kernel"], stride=l.get("stride") or l["kernel"]), False
        if k == "avgpool":
            return nn.AvgPool2d(l["kernel"], stride=l.get("stride") or l["kernel"], padding=l.get("padding", 0),
                                count_include_pad=True), False
        if k == "globalavgpool":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), False
        if k == "flatten":
            return nn.Flatten(), False
        simple = {"relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        if k in simple:
            return simple[k](), False
        if k == "dropout" and not l.get("rate"):
            return nn.Identity(), False
        raise ValueError(f"layer {l['name']!r}: kind {k!r} is not supported here (dropout needs distill's masks)")

    def forward(self, x):
        outs = {-1: x}
        for i, op in enumerate(self.ops):
            args = [outs[j] for j in self.ins[i]]
            outs[i] = op(*args) if len(args) > 1 else op(args[0])
        return outs[len(self.ops) - 1]


class Add(nn.Module):
    def forward(self, a, b):
        return a + b


def run(d):
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    w = read_safetensors(os.path.join(d, "weights.safetensors"))
    inp = read_safetensors(os.path.join(d, "inputs.safetensors"))
    x, y = inp["x"].to(torch.float64), inp["y"].to(torch.int64)

    net = Graph(spec).double()
    state = {k: v.to(torch.float64) for k, v in w.items()}
    for name, buf in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = buf.clone()  # torch's default (0); distill keeps no such counter
    net.load_state_dict(state, strict=True)

    out = {}
    net.eval()
    with torch.no_grad():
        out["eval_logits"] = net(x)
    net.train()
    net.zero_grad()
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["train_logits"] = logits
    out["loss"] = loss
    for name, p in net.named_parameters():
        out["grad/" + name] = p.grad
    for name, b in net.named_buffers():
        if not name.endswith("num_batches_tracked"):
            out["running/" + name] = b
    missing = set(w) - {k.split("/", 1)[1] for k in out if "/" in k}
    if missing:
        raise ValueError(f"{d}: no gradient or buffer for {sorted(missing)}")
    write_safetensors(os.path.join(d, "expected.safetensors"), out,
                      {"torch": torch.__version__, "dtype": "float64", "generator": "gen.py"})


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    torch.use_deterministic_algorithms(True)
    for d in sys.argv[1:]:
        run(d)


if __name__ == "__main__":
    main()
