#!/usr/bin/env bash
# Builds the CUDA binary here and bundles it, with the shared libraries the
# GPU machine lacks (libmicrohttpd, libsodium, utf8proc, jansson, OpenBLAS,
# cmocka, ...), into .bundle/ and .gpu-bundle.tar.xz (both ignored by git;
# carry the .tar.xz to the GPU machine and run scripts/gpu-check.sh there). The CUDA runtime is static; cuBLAS is the GPU machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 all unit-bins bench-bins >&2
rm -rf .bundle
mkdir -p .bundle/lib .bundle/tests .bundle/bench
cp build/elohim .bundle/
cp build/tests/test-* .bundle/tests/ 2>/dev/null || true
cp build/bench/* .bundle/bench/ 2>/dev/null || true
# The sqlite3 shell: a test drives it as an outside writer, and a stock CUDA
# machine lacks it.
mkdir -p .bundle/bin
command -v sqlite3 >/dev/null && cp "$(command -v sqlite3)" .bundle/bin/
# Every library our binaries need that a stock Ubuntu CUDA machine lacks
# (base system libraries such as zlib or gnutls stay the machine's own).
# OpenBLAS is opened with dlopen (src/backend/blas.c), so ldd does not list
# it: bundle it by name, with what it needs in turn.
blas=$(ldconfig -p | awk '/libopenblas\.so\.0 / && !b {b = $NF} END {print b}')
[ -n "$blas" ] || { echo "gpu-bundle: libopenblas.so.0 not found" >&2; exit 1; }
cp -L "$blas" .bundle/lib/libopenblas.so.0
for b in .bundle/elohim .bundle/tests/* .bundle/bench/* .bundle/bin/* "$blas"; do ldd "$b"; done |
    awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux)[.-]' |
    grep -v -E '/lib(z|ffi|gmp|gnutls|hogweed|nettle|idn2|p11-kit|tasn1|unistring|readline|tinfo)\.so' |
    while read -r lib; do cp -L "$lib" .bundle/lib/; done
# The shared fixtures (tiny-bert, sqllogictest scripts) travel too: the GPU
# machine gets only the checkout.
shared=${ELOHIM_SHARED:-../shared}
if [ -d "$shared" ]; then
    mkdir -p .bundle/shared
    cp -r "$shared/fixtures" "$shared/sqllogictest" .bundle/shared/ 2>/dev/null || true
fi
strip --strip-debug .bundle/elohim .bundle/tests/* .bundle/bench/* 2>/dev/null || true
# One compressed file travels (the carry limit is 64 MiB for everything).
# The test binaries are near copies of each other (each holds the CUDA fat
# binary): a dictionary larger than one binary lets xz store them once.
XZ_OPT="--lzma2=preset=6,dict=128MiB" tar -C .bundle -cJf .gpu-bundle.tar.xz .
du -sh .bundle .gpu-bundle.tar.xz >&2
