#!/usr/bin/env bash
# One command for a GPU box that has PyTorch (CUDA) but no Go and no network:
# builds distill's libtorch backend against that PyTorch's libtorch, runs the
# torch tests on CUDA, runs recipes/mnist-quick.yaml on CUDA, benchmarks the
# distillation step against a PyTorch script of the same model in the same
# run, and (time allowing) runs recipes/mnist-hinton.yaml.
#
# Prepare on a machine with Go and network (scripts/gpu/prepare.sh does it):
#   .gpu/go-trim.tar.xz   a trimmed Go toolchain (../shared/device/mk-go-trim.sh)
#   .gpu/mnist/*.gz       the four MNIST IDX files
#   .gpu/vendor.tar.xz    vendor/ from go mod vendor (or vendor/ itself)
# then copy the checkout there and run:  scripts/gpu/run.sh
# HINTON=1 also runs recipes/mnist-hinton.yaml (a few minutes more).
# Results (reports, logs) go to $OUT (default ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
step() { echo "== $*" | tee -a "$OUT/summary.log"; }

[ -d vendor ] || tar xJf .gpu/vendor.tar.xz || exit 1
if ! command -v go >/dev/null; then
	mkdir -p /tmp/go && tar xJf .gpu/go-trim.tar.xz -C /tmp/go || exit 1
	export GOROOT=/tmp/go PATH=/tmp/go/bin:$PATH
fi
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=vendor GOCACHE=${GOCACHE:-/tmp/gocache}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.log"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' | tee -a "$OUT/summary.log"

step "prepare gotch for this PyTorch's libtorch"
t0=$SECONDS
scripts/torch/build.sh --python "$PY" --vendor >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
step "prepared in $((SECONDS - t0)) s"
# The pip wheel's libraries (and the CUDA ones it depends on) must be found at run time.
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step "build"
go build -tags torch -o /tmp/distill ./cmd/distill || exit 1
/tmp/distill version | tee -a "$OUT/summary.log"

step "torch backend tests on CUDA"
DISTILL_TORCH_TEST_DEVICE=cuda DISTILL_TORCH_PYTHON=$PY go test -vet=off -tags torch -count=1 -timeout 150s ./backend/torch/ >"$OUT/test.log" 2>&1
echo "tests exit $?" | tee -a "$OUT/summary.log"
grep -E '^(ok|FAIL|---)' "$OUT/test.log" | head -40 | tee -a "$OUT/summary.log"

step "distillation step: distill (torch, cuda) vs PyTorch, same run"
go run -tags torch ./bench/train -backend torch -device cuda -ref bench/torchref/distill_step.py -ref-device cuda -python "$PY" -rounds 3 -steps 200 2>&1 | tee "$OUT/bench.log"

step "mnist-quick on CUDA"
t0=$SECONDS
# A shorter serving measurement than the recipe's default keeps the run brief.
{ cat recipes/mnist-quick.yaml; printf '\nserving:\n  seconds: 0.5\n'; } >/tmp/mnist-quick-gpu.yaml
/tmp/distill run /tmp/mnist-quick-gpu.yaml --backend torch --device cuda --data-dir "$PWD/.gpu/mnist" --out /tmp/run-quick --quiet >"$OUT/quick.md" 2>>"$OUT/summary.log"
echo "mnist-quick exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/summary.log"
cp /tmp/run-quick/report.json "$OUT/quick.json" 2>/dev/null

if [ "${HINTON:-0}" = 1 ]; then
	step "mnist-hinton on CUDA"
	t0=$SECONDS
	/tmp/distill run recipes/mnist-hinton.yaml --backend torch --device cuda --data-dir "$PWD/.gpu/mnist" --out /tmp/run-hinton --quiet >"$OUT/hinton.md" 2>>"$OUT/summary.log"
	cp /tmp/run-hinton/report.json "$OUT/hinton.json" 2>/dev/null
	echo "mnist-hinton exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/summary.log"
fi
