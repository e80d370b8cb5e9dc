#!/usr/bin/python3
"""Prints the PyTorch values that loss_test.go pins: run with python3-torch to regenerate."""
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=10)
s = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.1, 0.2, -0.3, 0.0], [-5.0, 10.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
t = torch.tensor([[1.0, 0.0, 0.0, 4.0], [3.0, -1.0, 0.5, 0.0], [0.0, 8.0, 2.0, 1.0]], dtype=torch.float64)
y = torch.tensor([3, 0, 1])
for alpha, T in [(0.0, 1.0), (0.9, 4.0), (0.5, 20.0), (1.0, 2.0)]:
    if s.grad is not None:
        s.grad = None
    kd = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
    ce = F.cross_entropy(s, y)
    loss = alpha * kd + (1 - alpha) * ce
    loss.backward()
    print(f"{{alpha: {alpha}, T: {T}, hard: {((1-alpha)*ce).item()!r}, soft: {(alpha*kd).item()!r}, total: {loss.item()!r},")
    print("  grad: []float64{" + ", ".join(repr(v) for v in s.grad.flatten().tolist()) + "}},")
