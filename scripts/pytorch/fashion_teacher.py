#!/usr/bin/env python3
"""Trains a teacher for recipes/fashion-onnx-teacher.yaml in PyTorch.

Usage: /usr/bin/python3 scripts/pytorch/fashion_teacher.py [OUT_DIR] [--epochs N] [--limit N]

Trains the torchvision-style ResNet of teacher/testdata/pytorch/make_teachers.py
(stem 16 channels, stages of 16 and 32 channels, the second with stride 2,
10 classes; about 20 k parameters) on Fashion-MNIST as distill reads it
(Debian's IDX files under /usr/share/datasets/fashion-mnist, or
$FASHION_MNIST_DIR; pixel values byte/255), on inputs normalised with the
training set's mean and std (0.2860, 0.3530), as PyTorch users usually do. The recipe
states that normalisation as teacher.preprocess, so the student learns on
the raw images. It writes into OUT_DIR (default runs/fashion-onnx-teacher):

  teacher.onnx         torch.onnx.export, opset 13: input "input" [batch,1,28,28], output "logits"
  teacher.safetensors  model.state_dict() (torchvision names, which distill's resnet uses)
  teacher.json         the normalisation, the epochs and the test accuracy

Each file is written under a temporary name and renamed. Two epochs take
a few minutes on one CPU core. Needs torch (Debian's python3-torch).
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "teacher", "testdata", "pytorch"))
from make_teachers import ResNet, write_safetensors  # noqa: E402  (the network the tests check)

SEED = 1
# Fashion-MNIST's training-set pixel mean and std (of byte/255): the
# recipe's teacher.preprocess states the same numbers.
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    """Reads a gzipped IDX file (uint8 data) into a tensor of its shape."""
    with gzip.open(path, "rb") as f:
        b = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", b[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an IDX file of bytes")
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(b[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load(dir, split):
    x = read_idx(os.path.join(dir, f"{split}-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    y = read_idx(os.path.join(dir, f"{split}-labels-idx1-ubyte.gz")).long()
    return x, y


class Normalised(nn.Module):
    """The teacher as trained: normalisation, then the ResNet. Only the
    ResNet is exported; the recipe applies the normalisation."""

    def __init__(self, net, mean, std):
        super().__init__()
        self.net, self.mean, self.std = net, mean, std

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def accuracy(model, x, y):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            right += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return right / len(x)


def atomic(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default=os.path.join(ROOT, "runs", "fashion-onnx-teacher"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (a smoke test)")
    p.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    a = p.parse_args()
    torch.manual_seed(SEED)
    x, y = load(a.data, "train")
    tx, ty = load(a.data, "t10k")
    if a.limit > 0:
        x, y = x[:a.limit], y[:a.limit]
    mean, std = MEAN, STD
    net = ResNet(in_ch=1, stem=16, widths=(16, 32), strides=(1, 2), classes=10)
    model = Normalised(net, mean, std)
    batch = 128
    steps = a.epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    start = time.time()
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, tx, ty)
        print(f"epoch {epoch + 1}/{a.epochs}: test accuracy {acc:.4f} ({time.time() - start:.0f} s)", flush=True)
    net.eval()
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "teacher.onnx")
    atomic(onnx_path, lambda tmp: torch.onnx.export(
        net, torch.zeros(1, 1, 28, 28), tmp, opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}))
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    write_safetensors(os.path.join(a.out, "teacher.safetensors"), state,
                      {"format": "pt", "generator": "fashion_teacher.py", "torch": torch.__version__})
    info = {"mean": [mean], "std": [std], "epochs": a.epochs, "train_images": len(x), "test_accuracy": acc}
    atomic(os.path.join(a.out, "teacher.json"), lambda tmp: open(tmp, "w").write(json.dumps(info, indent=2) + "\n"))
    print(f"wrote {onnx_path} and teacher.safetensors; normalisation mean {mean:.4f} std {std:.4f}")


if __name__ == "__main__":
    main()
