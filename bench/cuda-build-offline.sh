#!/usr/bin/env bash
# Builds `kiln --features cuda` on a machine that cannot download cubecl's LLVM bundle (the machines of this
# project reach crates.io but not GitHub), for measuring the GPU path. Where the bundle can be downloaded,
# `cargo build --release --features cuda` is the build; this script is only for machines without it.
#
# How: cubecl-cuda links cubecl's LLVM code generator, whose build script downloads LLVM 23. Kiln compiles its
# kernels with NVRTC instead (cubecl-cuda's `cpp` feature), so that code is never called. DOCS_RS=1 makes the
# LLVM crates' build scripts skip the download (ort-sys, which loads ONNX Runtime at run time, also reads it
# and links nothing either way), the linker leaves the LLVM symbols undefined, and a small library of stubs
# that abort with a message, loaded with LD_PRELOAD, satisfies the dynamic loader.
#
#     bash bench/cuda-build-offline.sh
#     LD_PRELOAD=target/cuda/release/libkiln_llvm_stubs.so target/cuda/release/kiln train sequential ... --device=cuda
#     LD_PRELOAD=... python3 bench/gpu.py --kiln target/cuda/release/kiln   # on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"
# Without nvcc on the build machine, cudarc would assume the newest CUDA; name the GPU machine's driver's.
# No debug line tables: the binary is copied to the GPU machine.
DOCS_RS=1 CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}" CARGO_PROFILE_RELEASE_DEBUG=false \
  RUSTFLAGS="-C link-arg=-Wl,--unresolved-symbols=ignore-all" \
  cargo build --release --locked -p kiln --features cuda
release="$CARGO_TARGET_DIR/release"
stubs="$release/llvm_stubs.c"
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void missing(const char *name) {'
  echo '  fprintf(stderr, "kiln: %s belongs to cubecl'"'"'s LLVM code generator, left out of this build\n", name);'
  echo '  abort();'
  echo '}'
  nm -D --undefined-only "$release/kiln" | awk '$2 ~ /^(LLVM|cubecl_)/ { print $2 }' | sort -u |
    while read -r symbol; do echo "void $symbol(void) { missing(\"$symbol\"); }"; done
} > "$stubs"
cc -shared -fPIC -O1 -o "$release/libkiln_llvm_stubs.so" "$stubs"
echo "built $release/kiln; run it with LD_PRELOAD=$release/libkiln_llvm_stubs.so"
