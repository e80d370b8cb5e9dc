#!/usr/bin/env python3
"""Writes PyTorch's resizes for teacher.Preprocess's golden test.

Usage: python3 teacher/testdata/preprocess/gen.py > teacher/testdata/preprocess/bilinear.json

For each case, a [C, H, W] input of deterministic values and what
torch.nn.functional.interpolate(x[None], size=(OH, OW), mode="bilinear",
align_corners=False) gives for it in float32 (PyTorch 1.13 or later;
antialias is off, its default).
"""
import json

import torch
import torch.nn.functional as F

cases = []
for c, h, w, oh, ow in [(1, 28, 28, 32, 32), (1, 28, 28, 14, 14), (3, 5, 7, 9, 4), (2, 4, 4, 4, 9), (1, 3, 1, 7, 2), (1, 6, 6, 1, 1)]:
    n = c * h * w
    x = (torch.arange(n, dtype=torch.float64) * 0.7311).sin().reshape(c, h, w).float()
    y = F.interpolate(x[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
    cases.append({"shape": [c, h, w], "size": [oh, ow], "x": x.flatten().tolist(), "y": y.flatten().tolist()})
print(json.dumps({"torch": torch.__version__, "cases": cases}))
