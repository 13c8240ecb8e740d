#!/usr/bin/env bash
# bench/trace/build.sh OUT.so - builds the CUPTI kernel tracer on the GPU
# machine, with the newest activity record versions its CUPTI header has.
set -euo pipefail
cupti=${CUPTI:-/usr/local/cuda/extras/CUPTI}
h=$cupti/include/cupti_activity.h
[ -f "$h" ] || h=$(ls /usr/local/cuda/targets/*/include/cupti_activity.h | head -1)
inc=$(dirname "$h")
newest() { grep -oE "} $1[0-9]+;" "$h" | grep -oE "$1[0-9]+" | sort -V | tail -1; }
lib=$cupti/lib64
[ -d "$lib" ] || lib=$(dirname "$(ls /usr/local/cuda/targets/*/lib/libcupti.so* | head -1)")
gcc -O2 -shared -fPIC -o "$1" "$(dirname "$0")/kernel-trace.c" -I"$inc" -I/usr/local/cuda/include \
    -DKREC="$(newest CUpti_ActivityKernel)" -DMREC="$(newest CUpti_ActivityMemcpy)" \
    -DSREC="$(newest CUpti_ActivityMemset)" -L"$lib" -Wl,-rpath,"$lib" -lcupti
echo "built $1 against $inc ($(newest CUpti_ActivityKernel))"
