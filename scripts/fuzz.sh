#!/usr/bin/env bash
# Builds every libFuzzer harness fuzz/fuzz-*.c (clang, ASan+UBSan, no CUDA)
# and runs each for SECONDS (default 60) from its seed corpus
# fuzz/seeds/<name>/ (if any). Usage: fuzz.sh [SECONDS] [name...]
# `make test` runs it with a small budget; `make fuzz FUZZ_SECONDS=N` for
# long runs. Exits non-zero when any harness finds a crash.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}; shift || true
build=build-fuzz
flags="-std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -pthread -fsanitize=address,undefined -fno-sanitize-recover=undefined $(pkg-config --cflags jansson libsodium sqlite3 libpng libmicrohttpd libutf8proc 2>/dev/null)"
libs="$(pkg-config --libs jansson libsodium sqlite3 libpng libmicrohttpd libutf8proc 2>/dev/null) -lm -ldl -lrt -pthread"
mkdir -p "$build/obj"
objs=()
for src in $(ls src/*/*.c | grep -v '^src/cli/main.c$'); do
    obj="$build/obj/$(echo "$src" | tr '/' '_').o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find include src -name '*.h' -newer "$obj" | head -1)" ]; then
        clang $flags -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || exit 1
    fi
    objs+=("$obj")
done
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for h in fuzz/fuzz-*.c; do [ -f "$h" ] && names+=("$(basename "$h" .c | sed 's/^fuzz-//')"); done
fi
status=0
for name in "${names[@]}"; do
    bin="$build/fuzz-$name"
    clang $flags -fsanitize=fuzzer "fuzz/fuzz-$name.c" "${objs[@]}" $libs -o "$bin" || { status=1; continue; }
    corpus="$build/corpus-$name"
    mkdir -p "$corpus"
    seeds=()
    [ -d "fuzz/seeds/$name" ] && seeds=("fuzz/seeds/$name")
    echo "fuzz-$name: ${seconds}s"
    if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=0 -artifact_prefix="$build/crash-$name-" \
            "$corpus" "${seeds[@]}" >"$build/fuzz-$name.log" 2>&1; then
        echo "fuzz-$name: FAILED (see $build/fuzz-$name.log)"
        tail -n 40 "$build/fuzz-$name.log"
        status=1
    else
        grep -E '^#[0-9]+.*(DONE|pulse)' "$build/fuzz-$name.log" | tail -1
    fi
done
exit $status
