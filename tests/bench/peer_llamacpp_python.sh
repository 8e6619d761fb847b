#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI server (python -m llama_cpp.server), the second peer of
# kiln's serving benchmark, once into a virtual environment BUILD_DIR/peer/lcp-venv (default
# BUILD_DIR: build).
#
#   tests/bench/peer_llamacpp_python.sh [BUILD_DIR]
#
# pip builds the package from its sdist (the llama.cpp it vendors, compiled for this machine
# with GGML_NATIVE, several minutes) with the `server` extra (FastAPI, uvicorn). Nothing is
# done when the environment already imports llama_cpp.server. Build output goes to stderr;
# the last line of stdout is the environment's python.
#
# This server runs one request at a time (a lock around the model), where llama-server batches
# its slots: it is the peer the issue that asked for the benchmark had in mind, kept beside
# llama-server rather than instead of it.
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
venv=$peer/lcp-venv
py=$venv/bin/python

if [ -x "$py" ] && "$py" -c "import llama_cpp.server.app" 2>/dev/null; then
    echo "$py"
    exit 0
fi

tarball=$peer/llama_cpp_python-$version.tar.gz
if [ ! -f "$tarball" ]; then
    echo "peer_llamacpp_python: downloading llama-cpp-python==$version (sdist)" >&2
    "$python" -m pip download --quiet --no-deps --no-binary :all: \
        -d "$peer" "llama-cpp-python==$version" >&2
fi

rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$py" -m pip install --quiet --upgrade pip >&2
echo "peer_llamacpp_python: building llama-cpp-python $version with $jobs jobs (several minutes)" >&2
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
    "$py" -m pip install --quiet --no-cache-dir "llama-cpp-python[server] @ file://$tarball" >&2
"$py" -c "import llama_cpp.server.app, llama_cpp; print('llama-cpp-python', llama_cpp.__version__)" >&2
echo "$py"
