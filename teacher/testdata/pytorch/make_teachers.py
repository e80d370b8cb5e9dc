#!/usr/bin/env python3
"""Makes the PyTorch teachers that distill's tests load.

Usage: make_teachers.py DIR

Builds a small ResNet in PyTorch whose module names are torchvision's
(conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0, fc), the same
network as distill's

  model.Blocks(model.BlocksConfig{Input: []int{1, 28, 28},
      Stem: model.StemConfig{Channels: 8},
      Stages: []model.Stage{{Channels: 8}, {Channels: 16, Stride: 2}},
      Classes: 10})

puts its batchnorms in eval mode with non-trivial running statistics
(a few train-mode forwards on shifted random inputs, random affine
parameters), and writes into DIR:

  resnet.safetensors       model.state_dict() (float32; num_batches_tracked as I64)
  resnet_f16.safetensors   the same state_dict in float16 (buffers too; the counter stays I64)
  resnet_bf16.safetensors  the same state_dict in bfloat16
  resnet.onnx              torch.onnx.export, opset 13, input "input" [batch,1,28,28], output "logits"
  resnet.pt                torch.jit.script(model), saved with torch.jit.save
  resnet_state_dict.pth    torch.save(model.state_dict()): a pickle, which distill refuses to load
  io.safetensors           x: float32 [8,1,28,28] inputs; logits: PyTorch's float32 eval logits;
                           logits_f16 / logits_bf16: float32 eval logits of the model whose
                           weights were rounded to float16 / bfloat16

torchvision is not needed: BasicBlock below is torchvision's, names and all.
The safetensors files are written here directly since the safetensors
package may not be installed. It needs only torch (1.13 or later).
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn

SEED = 13


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout, small: stem 8 channels (3x3, stride 1, no
    max-pool), stage 1 of 8 channels, stage 2 of 16 with stride 2, 10 classes."""

    def __init__(self, in_ch=1, stem=8, widths=(8, 16), strides=(1, 2), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem
        for i, (w, s) in enumerate(zip(widths, strides)):
            down = None
            if s != 1 or inplanes != w:
                down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride=s, bias=False), nn.BatchNorm2d(w))
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, w, s, down)))
            inplanes = w
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: its bits are those of an int16 view.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, metadata):
    """Writes tensors in name order, atomically (temp file + rename)."""
    header = {"__metadata__": metadata}
    chunks, off = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
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


def cast_state(state, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def logits_with(state, x):
    """Eval logits (float32) of the network holding state's values."""
    net = ResNet().eval()
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    with torch.no_grad():
        return net(x)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    net = ResNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        net.train()
        for _ in range(8):
            net(torch.randn(16, 1, 28, 28) * 1.5 + 0.3)
    net.eval()
    x = torch.randn(8, 1, 28, 28)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    meta = {"format": "pt", "generator": "make_teachers.py", "torch": torch.__version__}
    write_safetensors(os.path.join(d, "resnet.safetensors"), state, meta)
    io = {"x": x, "logits": logits_with(state, x)}
    for name, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        s = cast_state(state, dt)
        write_safetensors(os.path.join(d, f"resnet_{name}.safetensors"), s, meta)
        io[f"logits_{name}"] = logits_with(s, x)
    write_safetensors(os.path.join(d, "io.safetensors"), io, meta)

    torch.onnx.export(net, x, os.path.join(d, "resnet.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    torch.save(state, os.path.join(d, "resnet_state_dict.pth"))
    scripted = torch.jit.script(net)
    torch.jit.save(scripted, os.path.join(d, "resnet.pt"))
    with torch.no_grad():
        drift = (scripted(x) - io["logits"]).abs().max().item()
    if drift > 1e-5:
        raise SystemExit(f"TorchScript logits differ from eager ones by {drift}")


if __name__ == "__main__":
    main()
