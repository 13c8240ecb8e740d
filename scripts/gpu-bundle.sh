#!/usr/bin/env bash
# Builds the CUDA binary here and bundles it, with the shared libraries the
# GPU machine lacks (libmicrohttpd, libsodium, utf8proc, jansson, OpenBLAS,
# cmocka, ...), into .bundle/ (ignored by git; pass it to the device tool
# as `carry`). The CUDA runtime is static; cuBLAS is the GPU machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 all unit-bins >&2
rm -rf .bundle
mkdir -p .bundle/lib .bundle/tests
cp build/elohim .bundle/
cp build/tests/test-* .bundle/tests/ 2>/dev/null || true
# Every non-glibc library any of our binaries needs.
for b in .bundle/elohim .bundle/tests/*; do ldd "$b"; done |
    awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux)[.-]' |
    while read -r lib; do cp -L "$lib" .bundle/lib/; done
cp -r scripts tests apps bench .bundle/ 2>/dev/null || true
du -sh .bundle >&2
