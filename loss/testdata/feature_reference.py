#!/usr/bin/python3
"""Prints the PyTorch values that feature_test.go pins: run with python3-torch to regenerate.

Inputs are exact rationals, val(i, a, den) = ((i*a) % 23 - 11) / den, so Go
builds the same tensors; adapter weights use den 32 and 64, which float32 (the
type of model.Weights) holds exactly. Hints follow FitNets (F.mse_loss, or 1 - F.cosine_similarity
averaged over the batch) on the adapter's output (F.linear on the flattened
student, or a 1x1 F.conv2d); attention follows Zagoruyko & Komodakis' at_loss,
with |x|^p for general p. Each case prints the weighted loss and its gradient
with respect to the adapter's output (the student itself when there is none).
"""
import torch
import torch.nn.functional as F

D = torch.float64


def val(shape, a, den=7.0):
    n = 1
    for s in shape:
        n *= s
    return torch.tensor([((i * a) % 23 - 11) / den for i in range(n)], dtype=D).view(*shape)


def at(x, p):
    return F.normalize(x.abs().pow(p).mean(1).view(x.size(0), -1))


def case(name, kind, weight, sshape, tshape, distance="", adapter="none", p=0.0):
    s = val(sshape, 5)
    t = val(tshape, 7)
    if adapter == "linear":
        n = sshape[0]
        dt = 1
        for d in tshape[1:]:
            dt *= d
        ds = s[0].numel()
        W, b = val((dt, ds), 3, 32.0), val((dt,), 11, 64.0)
        a = F.linear(s.view(n, -1), W, b)
    elif adapter == "conv1x1":
        W, b = val((tshape[1], sshape[1], 1, 1), 3, 32.0), val((tshape[1],), 11, 64.0)
        a = F.conv2d(s, W, b)
    else:
        a = s
    a = a.detach().requires_grad_(True)
    n = sshape[0]
    if kind == "attention":
        loss = weight * (at(a, p) - at(t, p)).pow(2).mean()
    elif distance == "cosine":
        loss = weight * (1 - F.cosine_similarity(a.reshape(n, -1), t.reshape(n, -1), dim=1)).mean()
    else:
        loss = weight * F.mse_loss(a.reshape(n, -1), t.reshape(n, -1))
    loss.backward()
    print(f'{{name: "{name}", kind: "{kind}", weight: {weight}, distance: "{distance}", adapter: "{adapter}", p: {p},')
    print(f"  sshape: []int{{{', '.join(map(str, sshape))}}}, tshape: []int{{{', '.join(map(str, tshape))}}},")
    print(f"  value: {loss.item()!r},")
    print("  grad: []float64{" + ", ".join(repr(v) for v in a.grad.flatten().tolist()) + "}},")


case("hint mse", "hint", 0.7, (3, 5), (3, 5), "mse")
case("hint cosine", "hint", 1.3, (3, 5), (3, 5), "cosine")
case("hint linear mse", "hint", 1.0, (3, 6), (3, 4), "mse", "linear")
case("hint linear cosine map", "hint", 0.5, (2, 2, 2, 3), (2, 5), "cosine", "linear")
case("hint conv1x1 mse", "hint", 2.0, (2, 3, 2, 2), (2, 4, 2, 2), "mse", "conv1x1")
case("hint conv1x1 cosine", "hint", 1.0, (2, 3, 2, 2), (2, 4, 2, 2), "cosine", "conv1x1")
case("attention p=2", "attention", 1.5, (2, 3, 2, 3), (2, 4, 2, 3), p=2.0)
case("attention p=3", "attention", 1.0, (2, 3, 2, 3), (2, 4, 2, 3), p=3.0)
case("attention p=1", "attention", 1.0, (2, 3, 2, 3), (2, 2, 2, 3), p=1.0)
