#!/usr/bin/env bash
# Runs distill's libtorch backend on a GPU box that has PyTorch (CUDA) but
# neither Go nor network, in two stages that each fit one call of a
# time-limited machine, and prints one summary line per step.
#
#   scripts/gpu/run.sh build   unpack the toolchain and vendor/ (from .gpu/,
#                              made by scripts/gpu/prepare.sh), prepare gotch
#                              for the box's libtorch, build distill, the
#                              backend's test binary and the benchmark
#   scripts/gpu/run.sh check   on CUDA: the backend's tests, the training
#                              benchmark against PyTorch, BF16 against FP32 steps,
#                              recipes/mnist-quick.yaml (in BF16 where the GPU has
#                              it: precision auto); each under a timeout,
#                              together at most 7 minutes
#   scripts/gpu/run.sh all     both (the default)
#
# Options:
#   --dry-run     the same flow on a CPU machine, every step on the CPU with
#                 small budgets: what a GPU run does, short of CUDA itself
#   --python PY   the interpreter whose PyTorch supplies libtorch (python3)
# Environment: OUT (results; default .gpu/out), HINTON=1 adds
# recipes/mnist-hinton.yaml to check (it does not fit the budget of a short
# loan), TIMEOUT_SCALE multiplies every step's time limit (the limits fit a
# 16-core GPU box; a dry run on 2 cores sets 4).
#
# The build stage writes into build/torch, .gpu/bin and .gpu/cache (the Go
# build cache), all inside the checkout: a second call on the same machine
# rebuilds nothing. It also leaves each binary xz-compressed in $OUT
# (distill.xz, torch.test.xz, bench-train.xz, each well under 16 MiB):
# put those into .gpu/bin/ of the checkout to run check on another machine
# of the same image without building (check unpacks them). check builds
# first when it finds neither. The exit status is that of the first
# failing step; 3 means libtorch sees no CUDA device (outside --dry-run).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

STAGE=all DRY=0 PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
	case $1 in
	build | check | all) STAGE=$1 ;;
	--dry-run) DRY=1 ;;
	--python) PY=${2:?--python needs an interpreter}; shift ;;
	--python=*) PY=${1#*=} ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

OUT=${OUT:-$ROOT/.gpu/out}
BIN=$ROOT/.gpu/bin
mkdir -p "$OUT" "$BIN"
SUMMARY=$OUT/summary.log
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu

# summary prints one line and keeps it in $OUT/summary.log.
summary() { echo "run.sh: $*" | tee -a "$SUMMARY"; }
# step NAME SECONDS LOG CMD...: runs CMD under a timeout with its output in
# $OUT/LOG, prints one line with its status and time, and returns the
# status (124: timed out).
step() {
	local name=$1 limit=$(($2 * ${TIMEOUT_SCALE:-1})) logf=$OUT/$3 t0=$SECONDS rc
	shift 3
	timeout --kill-after=10 "$limit" "$@" >"$logf" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		summary "$name: ok in $((SECONDS - t0)) s"
	elif [ $rc = 124 ] || [ $rc = 137 ]; then
		summary "$name: TIMED OUT after ${limit} s (log: $logf)"
	else
		summary "$name: FAILED (exit $rc) in $((SECONDS - t0)) s; last lines of $logf:"
		tail -15 "$logf" | sed 's/^/    /' | tee -a "$SUMMARY"
	fi
	return $rc
}

# ---- The environment: Go from .gpu/ where none is installed, offline. ----
setup_go() {
	if ! command -v go >/dev/null; then
		[ -f .gpu/go.tar.xz ] || { summary "toolchain: no go on PATH and no .gpu/go.tar.xz (run scripts/gpu/prepare.sh on a machine with Go, then carry .gpu/)"; exit 1; }
		local gr=/tmp/distill-go
		if [ ! -x $gr/bin/go ] || [ .gpu/go.tar.xz -nt $gr/bin/go ]; then
			rm -rf $gr && mkdir -p $gr && tar xJf .gpu/go.tar.xz -C $gr || { summary "toolchain: cannot unpack .gpu/go.tar.xz"; exit 1; }
			touch $gr/bin/go
		fi
		export GOROOT=$gr PATH=$gr/bin:$PATH
	fi
	if [ ! -d vendor ]; then
		[ -f .gpu/vendor.tar.xz ] || { summary "vendor: no vendor/ and no .gpu/vendor.tar.xz (run scripts/gpu/prepare.sh)"; exit 1; }
		tar xJf .gpu/vendor.tar.xz || { summary "vendor: cannot unpack .gpu/vendor.tar.xz"; exit 1; }
	fi
	export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=vendor GOWORK=off GOCACHE=$ROOT/.gpu/cache
	export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
	go version >/dev/null 2>&1 || { summary "toolchain: go does not run"; exit 1; }
}

stage_build() {
	local t0=$SECONDS
	summary "build: $(go version | cut -d' ' -f3-), python $PY, device $DEVICE$([ "$DRY" = 1 ] && echo ' (dry run)')"
	step "libtorch" 420 build.log scripts/torch/build.sh --python "$PY" --vendor || return
	grep -m1 'device memory counters' "$OUT/build.log" | sed 's/^build.sh: /    /' | tee -a "$SUMMARY"
	# build.sh leaves distill and the backend's test binary in build/torch,
	# checked against the ops it had to stub.
	cp build/torch/distill build/torch/torch.test "$BIN/" || return
	step "bench binary" 120 build-bench.log go build -tags torch -o "$BIN/bench-train" ./bench/train || return
	local b
	# Stripped (symbols and debug information are a third of the size;
	# the check that needed the symbols has run) and compressed: ~10 MB
	# for distill.
	for b in $BINARIES; do
		strip -o "$OUT/$b.stripped" "$BIN/$b" && xz -T0 -3 -c "$OUT/$b.stripped" >"$OUT/$b.xz" || return
		rm -f "$OUT/$b.stripped"
	done
	summary "build stage done in $((SECONDS - t0)) s: $("$BIN/distill" version | tr '\n' ' ')"
	summary "binaries for another machine: $(cd "$OUT" && du -ch $(printf '%s.xz ' $BINARIES) | tail -1 | cut -f1) in $OUT/*.xz"
}

BINARIES="distill torch.test bench-train"

# have_binaries reports whether check can run without building,
# unpacking binaries carried as .gpu/bin/*.xz.
have_binaries() {
	local b
	for b in $BINARIES; do
		if [ ! -x "$BIN/$b" ] && [ -f "$BIN/$b.xz" ]; then
			xz -dc "$BIN/$b.xz" >"$BIN/$b" && chmod +x "$BIN/$b" || return 1
		fi
		[ -x "$BIN/$b" ] || return 1
	done
}

torch_lib_path() {
	# A pip wheel's libraries (and the CUDA ones they load) must be found at
	# run time; Debian's are on the default path.
	local lib
	lib=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null) || return 0
	export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

stage_check() {
	local t0=$SECONDS rc=0
	# failed keeps the first failing step's status in rc.
	failed() { [ "$rc" != 0 ] || rc=$1; }
	if ! have_binaries; then
		summary "check: no binaries in $BIN; running the build stage first"
		setup_go
		stage_build || return
	fi
	torch_lib_path
	if [ "$DRY" = 0 ]; then
		command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/run.sh: gpu: /' | tee -a "$SUMMARY"
		"$PY" -c 'import torch; print("run.sh: pytorch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>/dev/null | tee -a "$SUMMARY"
	fi
	local recipe=recipes/synthetic-tiny.yaml
	# The first CUDA call: a tiny run on the device. Without a device the
	# rest would only repeat the same error, so it stops here.
	step "device probe ($DEVICE)" 30 probe.log "$BIN/distill" run "$recipe" --backend torch --device "$DEVICE" --out "$OUT/probe-run" --quiet || {
		grep -q 'sees no CUDA device' "$OUT/probe.log" && { summary "libtorch sees no CUDA device: stopping"; return 3; }
		return 1
	}
	local testargs=(-test.count=1 -test.timeout=140s) benchargs=(-rounds 3 -steps 200) quick=recipes/mnist-quick.yaml
	if [ "$DRY" = 1 ]; then
		testargs+=(-test.short)
		benchargs=(-rounds 1 -steps 5 -modes distill)
		quick=$recipe
	fi
	# The test binary runs in its package directory, as go test would.
	step "backend tests ($DEVICE)" 150 test.log env DISTILL_TORCH_TEST_DEVICE="$DEVICE" DISTILL_TORCH_PYTHON="$PY" \
		bash -c 'cd backend/torch && exec "$0" "$@"' "$BIN/torch.test" "${testargs[@]}" || failed $?
	grep -E '^(--- FAIL|FAIL|PASS|ok)' "$OUT/test.log" | head -20 | sed 's/^/    /' | tee -a "$SUMMARY"
	# The reference computes in float32: so does the backend here, even on
	# a GPU where precision auto would pick bf16.
	step "training step vs PyTorch ($DEVICE)" 90 bench.log "$BIN/bench-train" -backend torch -device "$DEVICE" -precision fp32 \
		-ref bench/torchref/distill_step.py -ref-device "$DEVICE" -python "$PY" "${benchargs[@]}" || failed $?
	grep -E '^(backend|teacher|distill|student) ' "$OUT/bench.log" | sed 's/^/    /' | tee -a "$SUMMARY"
	# BF16 mixed precision against float32, the same steps in one process.
	step "bf16 vs fp32 step ($DEVICE)" 20 bench-bf16.log "$BIN/bench-train" -backend torch -device "$DEVICE" -precision bf16 -vs-precision fp32 \
		"${benchargs[@]}" || failed $?
	grep -E '^(teacher|distill|student) ' "$OUT/bench-bf16.log" | sed 's/^/    /' | tee -a "$SUMMARY"
	local data=()
	[ -d .gpu/mnist ] && data=(--data-dir "$ROOT/.gpu/mnist")
	# A shorter serving measurement than the recipe's keeps the run brief:
	# the recipe without its serving section, and a short one added.
	{
		awk '/^serving:/ { skip = 1; next } skip && /^[^ #]/ { skip = 0 } !skip' "$quick"
		printf '\nserving:\n  seconds: 0.5\n'
	} >"$OUT/quick.yaml"
	step "$(basename "$quick" .yaml) ($DEVICE)" 130 quick.log "$BIN/distill" run "$OUT/quick.yaml" --backend torch --device "$DEVICE" \
		"${data[@]}" --out "$OUT/quick-run" --quiet || failed $?
	[ -f "$OUT/quick-run/report.md" ] && cp "$OUT/quick-run/report.json" "$OUT/quick.json"
	# The stages' device memory peaks, where the build reads them.
	[ -f "$OUT/quick-run/report.md" ] && grep -E '^\| [^|]+ \| [0-9.]+ \| [0-9.]+% \| [^|]*reserved' "$OUT/quick-run/report.md" | head -8 | sed 's/^/    /' | tee -a "$SUMMARY"
	if [ "${HINTON:-0}" = 1 ]; then
		step "mnist-hinton ($DEVICE)" 540 hinton.log "$BIN/distill" run recipes/mnist-hinton.yaml --backend torch --device "$DEVICE" \
			"${data[@]}" --out "$OUT/hinton-run" --quiet || failed $?
	fi
	summary "check stage done in $((SECONDS - t0)) s, exit $rc"
	return $rc
}

: >"$SUMMARY"
case $STAGE in
build) setup_go && stage_build ;;
check) stage_check ;;
all) setup_go && stage_build && stage_check ;;
esac
