#!/usr/bin/env python3
"""PyTorch reference for backend/torch's BenchmarkResNetStep.

The model of model.Blocks with a 16-channel stem and one basic block per
stage of 16, 32 (stride 2) and 64 (stride 2) channels on 1x28x28 inputs,
10 classes (torchvision's BasicBlock: bias-free 3x3 convs, BatchNorm2d,
ReLU, a 1x1 conv + BatchNorm2d projection where the shape changes); batch
128, cross-entropy, SGD with momentum 0.9 and weight decay 5e-4, training
mode; random data from a pool of batches. Prints one JSON line per run:
{"samples_per_s", "steps", "threads", "torch"}.

  /usr/bin/python3 bench/torchref/resnet_step.py --threads 2 --steps 20 --runs 1
"""
import argparse, json, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--runs", type=int, default=1)
p.add_argument("--warmup", type=int, default=5)
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)


def conv_bn(cin, cout, k, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = Basic(16, 16, 1)
        self.layer2 = Basic(16, 32, 2)
        self.layer3 = Basic(32, 64, 2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


net = Net().train()
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
X = [torch.randn(a.batch, 1, 28, 28) for _ in range(16)]
Y = [torch.randint(0, 10, (a.batch,)) for _ in range(13)]


def step(i):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(X[i % len(X)]), Y[i % len(Y)])
    loss.backward()
    opt.step()


for i in range(a.warmup):
    step(i)
for r in range(a.runs):
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(a.warmup + i)
    dt = time.perf_counter() - t0
    print(json.dumps({"samples_per_s": a.steps * a.batch / dt, "steps": a.steps,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
