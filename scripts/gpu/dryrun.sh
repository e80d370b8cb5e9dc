#!/usr/bin/env bash
# Rehearses a GPU run on this CPU machine: everything scripts/gpu/run.sh
# does on a GPU box, short of CUDA itself. It prepares .gpu/ here (this
# step needs Go and network), copies the checkout with .gpu/ into a
# temporary directory, and runs `run.sh --dry-run all` there with Go hidden
# from PATH, GOPROXY=off, and no network at all where a network namespace
# can be made (unshare -n, as root). Python is Debian's python3 with
# python3-torch, whose torch/include stands in for the GPU box's PyTorch.
# CI runs it; by hand: scripts/gpu/dryrun.sh (about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
XZ_LEVEL=${XZ_LEVEL:-1} scripts/gpu/prepare.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C "$tmp"
mkdir -p "$tmp/.gpu"
cp -r .gpu/go.tar.xz .gpu/vendor.tar.xz .gpu/mnist "$tmp/.gpu/"
# PATH without any directory that holds a go binary.
path=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
	[ -x "$d/go" ] || path=${path:+$path:}$d
done
run=(env -u GOROOT -u GOPATH -u GOFLAGS -u GOWORK PATH="$path" PYTHON="$PY" OUT="$tmp/.gpu/out" TIMEOUT_SCALE="${TIMEOUT_SCALE:-4}" "$tmp/scripts/gpu/run.sh" --dry-run all)
if unshare -n true 2>/dev/null; then
	echo "dryrun.sh: running offline in a new network namespace, without go on PATH"
	run=(unshare -n "${run[@]}")
else
	echo "dryrun.sh: cannot make a network namespace here; running with GOPROXY=off, without go on PATH"
fi
rc=0
"${run[@]}" || rc=$?
mkdir -p .gpu/dryrun-out
cp "$tmp"/.gpu/out/*.log .gpu/dryrun-out/ 2>/dev/null || true
echo "dryrun.sh: exit $rc (logs in .gpu/dryrun-out/)"
exit $rc
