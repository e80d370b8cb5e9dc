#!/usr/bin/env python3
"""PyTorch reference for distill's training-step benchmark, on any device.

The same models and loss as `go run ./bench/train`: teacher MLP
784-1200-1200-10 (frozen, forward only), student 784-800-800-10, batch 128,
Adam, loss = a*T^2*KL(softmax(t/T)||softmax(s/T)) + (1-a)*CE(s, y) with
T=4, a=0.9 (and the teacher/student CE steps). Prints one JSON line per
mode: {"mode", "device", "samples_per_s"} (median of --runs), with the
setup it ran: torch's intra-op threads, its BLAS, and, where that is
OpenBLAS, its version, kernel (core) and threads.

  python3 bench/torchref/distill_step.py --device cuda --modes teacher,distill,student
"""
import argparse, ctypes, json, os, re, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu")
p.add_argument("--modes", default="teacher,distill,student")
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=200)
p.add_argument("--runs", type=int, default=5)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--threads", type=int, default=0, help="intra-op threads (torch.set_num_threads); 0 = libtorch's default")
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)
dev = torch.device(a.device)
torch.manual_seed(0)


def mlp(h):
    return nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10)).to(dev)


X = [torch.randn(a.batch, 784, device=dev) for _ in range(8)]
Y = [torch.randint(0, 10, (a.batch,), device=dev) for _ in range(13)]


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def make(mode):
    T, al = 4.0, 0.9
    teacher = None
    if mode == "distill":
        teacher = mlp(1200).eval()
        for q in teacher.parameters():
            q.requires_grad_(False)
    net = mlp(1200 if mode == "teacher" else 800)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(i):
        x, y = X[i % len(X)], Y[i % len(Y)]
        opt.zero_grad(set_to_none=True)
        s = net(x)
        if teacher is None:
            loss = F.cross_entropy(s, y)
        else:
            with torch.no_grad():
                t = teacher(x)
            kd = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
            loss = al * kd + (1 - al) * F.cross_entropy(s, y)
        loss.backward()
        opt.step()
    return step


def blas():
    """torch's BLAS as its build reports it, and the OpenBLAS loaded, if any."""
    info = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    out = {"blas_info": info.group(1) if info else "unknown"}
    try:
        maps = open("/proc/self/maps").read()  # Linux: the libraries loaded
    except OSError:
        maps = ""
    # Debian's torch takes its BLAS from the libblas.so.3 alternative.
    out["blas_libs"] = sorted({os.path.realpath(p) for p in re.findall(r"(/\S*(?:blas|mkl)\S*\.so\S*)", maps)})
    for lib in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
        try:
            d = ctypes.CDLL(lib)
            d.openblas_get_config.restype = ctypes.c_char_p
            d.openblas_get_corename.restype = ctypes.c_char_p
            out.update(openblas=d.openblas_get_config().decode(), openblas_core=d.openblas_get_corename().decode(),
                       openblas_threads=d.openblas_get_num_threads())
            break
        except (OSError, AttributeError):
            continue
    return out


for mode in a.modes.split(","):
    step = make(mode)
    for i in range(a.warmup):
        step(i)
    sync()
    rates = []
    for r in range(a.runs):
        t0 = time.perf_counter()
        for i in range(a.steps):
            step(i)
        sync()
        rates.append(a.steps * a.batch / (time.perf_counter() - t0))
    print(json.dumps({"mode": mode, "device": str(dev), "torch": torch.__version__, "samples_per_s": statistics.median(rates), "runs": rates,
                      "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), **blas()}), flush=True)
