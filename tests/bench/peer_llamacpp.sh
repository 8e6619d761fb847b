#!/usr/bin/env bash
# Builds llama.cpp's llama-server, the peer server of kiln's serving benchmark, once into
# BUILD_DIR/peer/llama-server (default BUILD_DIR: build).
#
#   tests/bench/peer_llamacpp.sh [BUILD_DIR]
#
# The llama.cpp source comes from the llama-cpp-python sdist on PyPI (vendor/llama.cpp), fetched
# with pip and cached in BUILD_DIR/peer. The binary is a static CPU build for this machine
# (GGML_NATIVE). Nothing is done when BUILD_DIR/peer/llama-server already exists. Build output
# goes to stderr; the last line of stdout is the binary's absolute path.
#
# Environment: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), PYTHON (default python3),
# JOBS (default nproc).
set -euo pipefail

build_dir=${1:-build}
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}

mkdir -p "$build_dir/peer"
peer=$(cd "$build_dir/peer" && pwd)
bin=$peer/llama-server

if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

tarball=$peer/llama_cpp_python-$version.tar.gz
if [ ! -f "$tarball" ]; then
    echo "peer_llamacpp: downloading llama-cpp-python==$version (sdist)" >&2
    "$python" -m pip download --quiet --no-deps --no-binary :all: \
        -d "$peer" "llama-cpp-python==$version" >&2
    if [ ! -f "$tarball" ]; then
        echo "peer_llamacpp: pip did not leave $tarball" >&2
        exit 1
    fi
fi

src_root=$peer/src
cmake_build=$peer/cmake-build
rm -rf "$src_root" "$cmake_build"
mkdir -p "$src_root"
echo "peer_llamacpp: extracting $tarball" >&2
tar -xzf "$tarball" -C "$src_root" "llama_cpp_python-$version/vendor/llama.cpp"
src=$src_root/llama_cpp_python-$version/vendor/llama.cpp

echo "peer_llamacpp: configuring (cmake, Release, static, native CPU)" >&2
cmake -S "$src" -B "$cmake_build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF >&2

echo "peer_llamacpp: building llama-server with $jobs jobs (several minutes)" >&2
cmake --build "$cmake_build" --config Release --target llama-server -j"$jobs" >&2

built=$cmake_build/bin/llama-server
if [ ! -x "$built" ]; then
    echo "peer_llamacpp: build finished but $built is missing" >&2
    exit 1
fi
cp "$built" "$bin.tmp"
mv "$bin.tmp" "$bin"
# Keep the cached tarball, drop the sources and objects (several hundred MB).
rm -rf "$src_root" "$cmake_build"
"$bin" --version >&2 || true
echo "$bin"
