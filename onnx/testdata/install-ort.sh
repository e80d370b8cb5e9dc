#!/usr/bin/env bash
# Installs ONNX Runtime's CPU shared library for the tests of package onnx
# and for bench/int8. It comes inside the npm package onnxruntime-node,
# whose install script is skipped (it would download more; the CPU
# library is already in the package). Idempotent: does nothing if that
# version is already installed. Prints the library's path, which the Go
# code also finds by itself (or set ONNXRUNTIME_LIB to it).
#
#   onnx/testdata/install-ort.sh            # into ${XDG_CACHE_HOME:-~/.cache}/distill-ort
#   DISTILL_ORT_DIR=/some/dir onnx/testdata/install-ort.sh
#
# The version must provide ORT C API 24 or newer (what
# github.com/yalue/onnxruntime_go v1.27 asks for), i.e. ONNX Runtime ≥ 1.24.
set -euo pipefail

version="${ORT_VERSION:-1.30.0}"
dir="${DISTILL_ORT_DIR:-${XDG_CACHE_HOME:-${HOME:?set HOME or DISTILL_ORT_DIR}/.cache}/distill-ort}"
pkg="$dir/node_modules/onnxruntime-node"
lib="$pkg/bin/napi-v6/linux/x64/libonnxruntime.so.1"

installed() {
  [ -f "$lib" ] && [ -f "$pkg/package.json" ] &&
    grep -q "\"version\": *\"$version\"" "$pkg/package.json"
}

if ! installed; then
  if ! command -v npm >/dev/null; then
    echo "install-ort.sh: npm is needed (apt-get install -y npm)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "onnxruntime-node@$version" >&2
  if ! installed; then
    echo "install-ort.sh: onnxruntime-node@$version installed no $lib" >&2
    exit 1
  fi
fi
echo "$lib"
