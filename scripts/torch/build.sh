#!/usr/bin/env bash
# Prepare distill's libtorch backend (package backend/torch, build tag "torch")
# for the libtorch installed on this machine.
#
# gotch v0.9.1 (the Go binding distill uses) hard-codes CUDA link flags and a
# bundled libtorch path in libtch/lib.go, and its C++ wrappers were generated
# for libtorch 2.1. This script:
#   1. finds the libtorch to build against (see "Which libtorch" below);
#   2. copies gotch into build/torch/gotch and rewrites libtch/lib.go's cgo
#      flags for that libtorch (include and library paths, C++11 ABI, CUDA);
#   3. compiles libtch's C++ (g++ -fsyntax-only) and replaces the body of every
#      generated wrapper that does not compile against this libtorch with a
#      runtime error (internal/tools/stubatg), until it compiles;
#   4. writes build/torch/go.work (this module + replace gotch => ./gotch)
#      and build/torch/go.mod for -modfile, so go.mod and go.sum stay
#      untouched;
#   5. adds scripts/torch/devmem.cpp to libtch (the CUDA allocator's memory
#      counters, read where libtorch has c10::DeviceAllocator) and builds
#      gotch's libtch package once, so that later builds are cached;
#   6. builds distill and the backend's test binary and fails if they call
#      any wrapper that step 3 stubbed (the list is read from the binaries'
#      symbols, so it follows the code): a core op that does not compile is
#      a build error with the compiler's message, never a run-time one.
# It is idempotent: when build/torch is already prepared for the same
# libtorch it only prints how to build.
#
# Which libtorch (first match wins):
#   --python PY       the libtorch inside a pip-installed PyTorch of interpreter
#                     PY (CUDA too when torch/lib/libtorch_cuda.so exists)
#   --libtorch DIR    an unpacked libtorch archive (DIR/include, DIR/lib);
#                     LIBTORCH=DIR in the environment does the same
#   (default)         Debian's libtorch-dev (apt-get install -y libtorch-dev)
#
# Other options:
#   --no-cuda         link the CPU libraries only, even if CUDA ones exist
#   --vendor          patch vendor/github.com/sugarme/gotch in place instead of
#                     writing a go.work (for offline builds after `go mod vendor`;
#                     then build with GOFLAGS=-mod=vendor)
#   --out DIR         prepare into DIR instead of build/torch (e.g. to keep a
#                     CPU and a CUDA preparation side by side)
#   --force           redo everything even if already prepared
#   -h, --help        this text
# Environment:
#   LIBTORCH          as --libtorch
#   TORCH_CXX11_ABI   0 or 1: override the detected _GLIBCXX_USE_CXX11_ABI
#   TORCH_CXX_STD     e.g. c++20: override the detected C++ standard
#   GOTCH_SRC         a gotch v0.9.1 source tree to copy instead of the module cache's
#   TORCH_SPLIT       split libtch's generated C++ into N files, compiled in
#                     parallel (default: min(nproc, 8) on 4+ cores, else 1)
#   CXX               the C++ compiler (default g++)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build/torch
SCRIPTS=$ROOT/scripts/torch
PYTHON="" LT=${LIBTORCH:-} NOCUDA=0 VENDOR=0 FORCE=0
while [ $# -gt 0 ]; do
	case $1 in
	--python) PYTHON=${2:?--python needs an interpreter, e.g. --python python3}; shift ;;
	--python=*) PYTHON=${1#*=} ;;
	--libtorch) LT=${2:?--libtorch needs a directory}; shift ;;
	--libtorch=*) LT=${1#*=} ;;
	--out) BUILD=${2:?--out needs a directory}; shift ;;
	--out=*) BUILD=${1#*=} ;;
	--no-cuda) NOCUDA=1 ;;
	--vendor) VENDOR=1 ;;
	--force) FORCE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
CXX=${CXX:-g++}
command -v go >/dev/null || die "go is not on PATH"
command -v "$CXX" >/dev/null || die "$CXX is not on PATH: install g++ (apt-get install -y g++) or set CXX"

# ---- 1. Find libtorch: include dirs, library dir, version, ABI, CUDA. ----
ABI="" VERSION=""
if [ -n "$PYTHON" ]; then
	KIND=python
	# Only stdout carries the answers: a warning that `import torch` prints
	# on stderr must not become the torch path.
	pyerr=$(mktemp)
	info=$("$PYTHON" -c 'import os, torch
print(os.path.dirname(torch.__file__))
print(torch.__version__)
print(int(torch.compiled_with_cxx11_abi()))' 2>"$pyerr") ||
		die "$PYTHON cannot import torch: $(cat "$pyerr")"
	rm -f "$pyerr"
	[ "$(wc -l <<<"$info")" = 3 ] || die "$PYTHON printed something other than torch's path, version and ABI: $info"
	TDIR=$(sed -n 1p <<<"$info") VERSION=$(sed -n 2p <<<"$info") ABI=$(sed -n 3p <<<"$info")
	INCS=("$TDIR/include" "$TDIR/include/torch/csrc/api/include")
	LIBDIR=$TDIR/lib
	[ -f "$TDIR/include/torch/script.h" ] ||
		die "the PyTorch of $PYTHON ($TDIR) has no C++ headers in $TDIR/include (on Debian, install libtorch-dev, or run without --python)"
elif [ -n "$LT" ]; then
	KIND=archive
	LT=$(cd "$LT" 2>/dev/null && pwd) || die "the libtorch directory ${LIBTORCH:-given to --libtorch} does not exist"
	[ -f "$LT/include/torch/script.h" ] || die "$LT does not look like an unpacked libtorch (no include/torch/script.h)"
	INCS=("$LT/include" "$LT/include/torch/csrc/api/include")
	LIBDIR=$LT/lib
else
	KIND=debian
	MA=$("$CXX" -print-multiarch 2>/dev/null || true)
	LIBDIR=/usr/lib/${MA:-x86_64-linux-gnu}
	# /usr/include itself is a default search dir; adding it with -I breaks libstdc++'s #include_next.
	INCS=(/usr/include/torch/csrc/api/include)
	[ -f /usr/include/torch/script.h ] && [ -f "$LIBDIR/libtorch.so" ] ||
		die "Debian's libtorch is not installed: apt-get install -y libtorch-dev (or pass --libtorch DIR / --python PY)"
fi
for l in libtorch.so libtorch_cpu.so libc10.so; do
	[ -e "$LIBDIR/$l" ] || die "$LIBDIR/$l is missing: this libtorch is incomplete"
done
VH=""
for d in "${INCS[@]}"; do [ -f "$d/torch/version.h" ] && VH=$d/torch/version.h && break; done
if [ -z "$VERSION" ] && [ -n "$VH" ]; then
	VERSION=$(awk '/define TORCH_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' "$VH")
fi
VERSION=${VERSION:-unknown}
if [ -z "$ABI" ]; then
	# (grep -c reads all of nm's output: with grep -q, pipefail sees nm's SIGPIPE.)
	if [ "$(nm -D --defined-only "$LIBDIR/libc10.so" 2>/dev/null | grep -c __cxx11)" -gt 0 ]; then ABI=1; else ABI=0; fi
fi
ABI=${TORCH_CXX11_ABI:-$ABI}
CUDA=0
[ "$NOCUDA" = 0 ] && [ -e "$LIBDIR/libtorch_cuda.so" ] && CUDA=1
case $LIBDIR in /usr/lib | /usr/lib64 | /usr/lib/*-linux-gnu) SYSLIB=1 ;; *) SYSLIB=0 ;; esac
for p in "${INCS[@]}" "$LIBDIR"; do
	case $p in *[!A-Za-z0-9_./+-]*) die "path $p has characters cgo does not accept in flags; move or link libtorch to a plain path" ;; esac
done

# ---- gotch source: the module cache, GOTCH_SRC, or vendor/. ----
GOTCH_VER=$(awk '$1 == "github.com/sugarme/gotch" {print $2}' "$ROOT/go.mod")
[ -n "$GOTCH_VER" ] || die "go.mod does not require github.com/sugarme/gotch"
if [ "$VENDOR" = 1 ]; then
	SRC=$ROOT/vendor/github.com/sugarme/gotch
	[ -d "$SRC/libtch" ] || die "--vendor: $SRC/libtch is missing; run 'go mod vendor' with the backend/torch package present (GOFLAGS=-tags=torch go mod vendor)"
	[ -f "$BUILD/vendor-orig/libtch/lib.go" ] || { mkdir -p "$BUILD/vendor-orig" && cp -r "$SRC/libtch" "$BUILD/vendor-orig/"; }
	ORIG=$BUILD/vendor-orig
else
	SRC=${GOTCH_SRC:-$(go env GOMODCACHE)/github.com/sugarme/gotch@$GOTCH_VER}
	if [ ! -d "$SRC/libtch" ]; then
		log "downloading github.com/sugarme/gotch@$GOTCH_VER into the module cache"
		SRC=$(cd "$ROOT" && go mod download -json "github.com/sugarme/gotch@$GOTCH_VER" | awk -F'"' '$2 == "Dir" {print $4}')
		[ -d "$SRC/libtch" ] || die "cannot find gotch $GOTCH_VER: set GOTCH_SRC to a copy of it, or use --vendor"
	fi
	ORIG=$SRC
fi

STD=${TORCH_CXX_STD:-}
NPROC=$(nproc 2>/dev/null || echo 1)
SPLIT=${TORCH_SPLIT:-$([ "$NPROC" -ge 4 ] && echo $((NPROC < 8 ? NPROC : 8)) || echo 1)}
STAMP_KEY="kind=$KIND version=$VERSION abi=$ABI cuda=$CUDA std=${STD:-auto} vendor=$VENDOR split=$SPLIT
incs=${INCS[*]}
libdir=$LIBDIR $(stat -Lc '%s %Y' "$LIBDIR/libtorch_cpu.so")
gotch=$GOTCH_VER $ORIG
scripts=$(cat "$SCRIPTS/build.sh" "$SCRIPTS/devmem.cpp" "$ROOT"/internal/tools/stubatg/*.go | sha256sum | cut -c1-16)"
if [ "$VENDOR" = 1 ]; then
	STAMP=$BUILD/stamp-vendor LIBTCH=$SRC/libtch
else
	STAMP=$BUILD/stamp LIBTCH=$BUILD/gotch/libtch
fi

# The workspace files point the build at the prepared gotch; they are
# rewritten on every run (cheap), so they follow edits of go.mod:
#   go.work         for GOWORK=... (module mode; -mod=readonly or vendor only)
#   go.mod, go.sum  for -modfile=... (works with GOFLAGS=-mod=mod too)
write_workspace() {
	local rel
	rel=$(realpath --relative-to="$ROOT" "$BUILD")
	case $rel in ../*) rel=$BUILD ;; *) rel=./$rel ;; esac
	cat >"$BUILD/go.work" <<EOF
// Generated by scripts/torch/build.sh: the distill module with gotch replaced
// by the copy prepared for libtorch $VERSION. Use with GOWORK=$BUILD/go.work.
go $(awk '$1 == "go" {print $2; exit}' "$ROOT/go.mod")

use $(realpath --relative-to="$BUILD" "$ROOT")

replace github.com/sugarme/gotch $GOTCH_VER => ./gotch
EOF
	{
		echo "// Generated by scripts/torch/build.sh from $ROOT/go.mod: use with -modfile=$BUILD/go.mod."
		cat "$ROOT/go.mod"
		echo
		echo "replace github.com/sugarme/gotch $GOTCH_VER => $rel/gotch"
	} >"$BUILD/go.mod"
	cp "$ROOT/go.sum" "$BUILD/go.sum"
}

print_usage() {
	echo
	echo "distill's torch backend is prepared for libtorch $VERSION ($KIND: $LIBDIR, C++11 ABI $ABI, CUDA $([ $CUDA = 1 ] && echo yes || echo no))."
	[ -s "$BUILD/stubbed.txt" ] && echo "$(sort -u "$BUILD/stubbed.txt" | wc -l) exotic gotch wrappers do not compile against it and fail at run time if called (list: $BUILD/stubbed.txt)."
	[ "$SYSLIB" = 0 ] && echo "The binaries find libtorch through an rpath to $LIBDIR."
	# -o bin/distill: without it the binary would be named distill, the
	# name of the repository's distill/ package directory, and go build fails.
	echo "Build and test from $ROOT with:"
	if [ "$VENDOR" = 1 ]; then
		echo "  GOFLAGS=-mod=vendor go build -tags torch -o bin/distill ./cmd/distill"
		echo "  GOFLAGS=-mod=vendor go test -tags torch ./..."
	else
		echo "  GOWORK=$BUILD/go.work go build -tags torch -o bin/distill ./cmd/distill"
		echo "  GOWORK=$BUILD/go.work go test -tags torch ./..."
		echo "or, where GOFLAGS=-mod=mod is wanted (a workspace refuses it):"
		echo "  GOWORK=off GOFLAGS='-mod=mod -modfile=$BUILD/go.mod' go build -tags torch -o bin/distill ./cmd/distill"
	fi
	echo "then run bin/distill (e.g. bin/distill version)."
}

# GOFLAGS without any -mod=..., for the go commands run here.
GOFLAGS_NOMOD=$(sed -E 's/(^| )-mod=[a-z]+//g' <<<"${GOFLAGS:-}")
# go runs the module's own commands (stubatg) and the torch builds.
gomod() { (cd "$ROOT" && GOWORK=off GOFLAGS="$GOFLAGS_NOMOD $([ "$VENDOR" = 1 ] && echo -mod=vendor)" go "$@"); }
gotorch() {
	if [ "$VENDOR" = 1 ]; then
		(cd "$ROOT" && GOWORK=off GOFLAGS="$GOFLAGS_NOMOD -mod=vendor" go "$@")
	else
		(cd "$ROOT" && GOWORK=$BUILD/go.work GOFLAGS=$GOFLAGS_NOMOD go "$@")
	fi
}

# check_core_ops builds the binaries that use the backend and fails when
# one of them calls a stubbed wrapper.
check_core_ops() {
	log "checking that no wrapper distill calls was stubbed (building distill and the backend's tests)"
	gotorch build -tags torch -o "$BUILD/distill" ./cmd/distill
	gotorch test -c -tags torch -o "$BUILD/torch.test" ./backend/torch
	"$BUILD/stubatg" check -list "$BUILD/stubbed.txt" "$BUILD/distill" "$BUILD/torch.test" >&2 ||
		die "libtorch $VERSION lacks ops the torch backend needs (above); use a libtorch gotch $GOTCH_VER supports (2.1) or one listed in docs/torch.md"
}

if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_KEY" ] && [ -f "$LIBTCH/lib.go" ]; then
	log "already prepared (delete $STAMP or pass --force to redo)"
	[ "$VENDOR" = 1 ] || write_workspace
	[ -x "$BUILD/stubatg" ] || gomod build -o "$BUILD/stubatg" ./internal/tools/stubatg
	check_core_ops
	print_usage
	exit 0
fi
rm -f "$STAMP"
mkdir -p "$BUILD"
: >"$BUILD/stubbed.txt"
gomod build -o "$BUILD/stubatg" ./internal/tools/stubatg || die "cannot build internal/tools/stubatg"

# ---- 2. A fresh, writable copy of gotch (or pristine vendored libtch). ----
if [ "$VENDOR" = 1 ]; then
	log "restoring vendored libtch from $ORIG/libtch"
	rm -rf "$LIBTCH" && cp -r "$ORIG/libtch" "$LIBTCH" && chmod -R u+w "$LIBTCH"
else
	log "copying gotch $GOTCH_VER from $SRC"
	rm -rf "$BUILD/gotch.tmp" && cp -r "$SRC" "$BUILD/gotch.tmp" && chmod -R u+w "$BUILD/gotch.tmp"
	rm -rf "$BUILD/gotch" && mv "$BUILD/gotch.tmp" "$BUILD/gotch"
fi
rm -f "$LIBTCH"/*.go.orig

INCFLAGS=()
for d in "${INCS[@]}"; do INCFLAGS+=("-I$d"); done

# The C++ standard: C++17 for libtorch 1.x/2.x; newer releases may need C++20.
if [ -z "$STD" ]; then
	probe=$BUILD/probe.cpp
	printf '#include <ATen/core/Tensor.h>\nint main() { return 0; }\n' >"$probe"
	for s in c++17 c++20; do
		if "$CXX" -std=$s -fsyntax-only -w -D_GLIBCXX_USE_CXX11_ABI=$ABI "${INCFLAGS[@]}" "$probe" 2>"$BUILD/probe.log"; then
			STD=$s
			break
		fi
	done
	[ -n "$STD" ] || die "libtorch's headers do not compile with $CXX (c++17 or c++20); see $BUILD/probe.log"
fi
log "libtorch $VERSION ($KIND), C++11 ABI $ABI, $STD, CUDA $CUDA"

# ---- Device memory counters (scripts/torch/devmem.cpp). ----
# They need c10::DeviceAllocator (PyTorch 2.9+); with an older libtorch
# the file compiles to functions that say so, and nothing else changes.
DEVMEM=0
if "$CXX" -std=$STD -fsyntax-only -w -D_GLIBCXX_USE_CXX11_ABI=$ABI -DDISTILL_DEVICE_ALLOCATOR=1 "${INCFLAGS[@]}" \
	"$SCRIPTS/devmem.cpp" 2>"$BUILD/devmem-errors.txt"; then
	DEVMEM=1
	log "device memory counters: yes (c10::DeviceAllocator)"
else
	log "device memory counters: no (libtorch $VERSION has no c10::DeviceAllocator: $(grep -m1 'error' "$BUILD/devmem-errors.txt" || echo 'see '"$BUILD/devmem-errors.txt"))"
fi
cp "$SCRIPTS/devmem.cpp" "$LIBTCH/distill_devmem.cpp"

# ---- 3. Rewrite lib.go's cgo flags for this libtorch. ----
LDFLAGS="-L$LIBDIR"
[ "$SYSLIB" = 0 ] && LDFLAGS+=" -Wl,-rpath,$LIBDIR"
# Without --no-as-needed the linker drops libtorch_cuda (nothing references it
# directly) and CUDA shows as unavailable (gotch issues #74, #78).
[ "$CUDA" = 1 ] && LDFLAGS+=" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda"
LDFLAGS+=" -ltorch -ltorch_cpu -lc10 -lstdc++"
# A pip wheel's or archive's libraries find their own dependencies (CUDA
# runtime, cuDNN, NCCL, a bundled libgomp) through their $ORIGIN runpaths at
# run time; the link-time check of their undefined symbols cannot always
# follow those, so it is turned off for them.
[ "$SYSLIB" = 0 ] && LDFLAGS+=" -Wl,--allow-shlib-undefined"
cat >"$LIBTCH/lib.go" <<EOF
// Code generated by distill's scripts/torch/build.sh for libtorch $VERSION ($KIND, $LIBDIR); DO NOT EDIT.

package libtch

// #cgo CPPFLAGS: -I\${SRCDIR} -D_GLIBCXX_USE_CXX11_ABI=$ABI -DDISTILL_DEVICE_ALLOCATOR=$DEVMEM ${INCFLAGS[*]}
// #cgo CFLAGS: -O2 -w
// #cgo CXXFLAGS: -std=$STD -O2 -w
// #cgo LDFLAGS: $LDFLAGS
import "C"
EOF

# ---- Optionally split the generated wrappers into several C++ files. ----
# One translation unit of ~2500 wrappers takes ~1.5 minutes to compile; Go
# compiles a package's C++ files in parallel, so on a many-core machine the
# wrappers are split into SPLIT files (torch_api_generated_K.cpp). #line
# directives keep the compiler's file names and line numbers those of
# torch_api_generated.cpp.h, which stays the file that is patched.
split_generated() {
	rm -f "$LIBTCH"/torch_api_generated_*.cpp
	[ "$SPLIT" -gt 1 ] || return 0
	local hdr total
	hdr=$(grep '^#include' "$LIBTCH/torch_api.cpp" | grep -v -e stb_image -e torch_api_generated)
	total=$(grep -c '^[A-Za-z].*(.*{$' "$LIBTCH/torch_api_generated.cpp.h")
	awk -v n="$SPLIT" -v total="$total" -v dir="$LIBTCH" -v hdr="$hdr" '
		function open_part(k, line) {
			f = sprintf("%s/torch_api_generated_%d.cpp", dir, k)
			printf "// Part %d of torch_api_generated.cpp.h, split by scripts/torch/build.sh.\n%s\n#line %d \"torch_api_generated.cpp.h\"\n", k, hdr, line > f
		}
		BEGIN { per = int((total + n - 1) / n); k = 0; cnt = 0; open_part(0, 1) }
		/^[A-Za-z].*\(.*\{$/ {
			if (cnt > 0 && cnt % per == 0) { close(f); k++; open_part(k, NR) }
			cnt++
		}
		{ print > f }
	' "$LIBTCH/torch_api_generated.cpp.h"
}
if [ "$SPLIT" -gt 1 ]; then
	# torch_api.h defines gotch's thread-local error slot; with several C++
	# files it must be declared there and defined once, in torch_api.cpp.
	grep -q '^thread_local char \*torch_last_err = nullptr;$' "$LIBTCH/torch_api.h" ||
		die "unexpected libtch/torch_api.h (no torch_last_err definition); retry with TORCH_SPLIT=1"
	sed -i 's/^thread_local char \*torch_last_err = nullptr;$/extern thread_local char *torch_last_err;/' "$LIBTCH/torch_api.h"
	sed -i -e '0,/^#include "torch_api.h"$/s//#include "torch_api.h"\nthread_local char *torch_last_err = nullptr;/' \
		-e '/^#include "torch_api_generated.cpp.h"$/d' "$LIBTCH/torch_api.cpp"
fi

# ---- 4. Stub the wrappers that do not compile against this libtorch. ----
cxx_syntax() { # file -> its errors in $BUILD/cxx-errors.<file>.txt
	(cd "$LIBTCH" && "$CXX" -std=$STD -fsyntax-only -w -fmax-errors=0 -D_GLIBCXX_USE_CXX11_ABI=$ABI -I. "${INCFLAGS[@]}" "$1") 2>"$BUILD/cxx-errors.$1.txt"
}
export -f cxx_syntax
export LIBTCH BUILD CXX STD ABI
export INCFLAGS_STR="${INCFLAGS[*]}"
pass=0
while :; do
	pass=$((pass + 1))
	split_generated
	rm -f "$BUILD"/cxx-errors.*.txt
	files=$(cd "$LIBTCH" && echo torch_api.cpp && find . -maxdepth 1 -name 'torch_api_generated_*.cpp' -printf '%f\n')
	log "pass $pass: compiling libtch's C++ wrappers (syntax only, $(wc -w <<<"$files") file(s) in parallel, ~1 minute)"
	ok=1
	# shellcheck disable=SC2016
	xargs -P "$SPLIT" -n 1 bash -c 'INCFLAGS=($INCFLAGS_STR); cxx_syntax "$0"' <<<"$files" || ok=0
	cat "$BUILD"/cxx-errors.*.txt >"$BUILD/cxx-errors.txt"
	[ "$ok" = 1 ] && break
	[ $pass -le 4 ] || die "libtch still does not compile after $pass passes; see $BUILD/cxx-errors.txt"
	"$BUILD/stubatg" stub -dir "$LIBTCH" -log "$BUILD/cxx-errors.txt" -list "$BUILD/stubbed.txt" ||
		die "libtch does not compile against libtorch $VERSION and the errors cannot be stubbed (the first is quoted above); all of them: $BUILD/cxx-errors.txt"
done
sort -u -o "$BUILD/stubbed.txt" "$BUILD/stubbed.txt"
log "$(wc -l <"$BUILD/stubbed.txt") wrappers stubbed"

# ---- 5. The workspace, and a first build of libtch into the Go build cache. ----
if [ "$VENDOR" = 1 ]; then
	log "building vendored libtch (cgo, ~1.5 minutes on 2 cores)"
else
	write_workspace
	log "building libtch (cgo, ~1.5 minutes on 2 cores)"
fi
gotorch build github.com/sugarme/gotch/libtch
check_core_ops
echo "$STAMP_KEY" >"$STAMP"
print_usage
