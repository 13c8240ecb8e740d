# test-fuzz-smoke.sh - every libFuzzer harness under fuzz/ builds and runs
# for a short bounded budget (ELOHIM_FUZZ_SECONDS, default 8 s each) from
# its seeds; `make fuzz` is the long run.
. tests/integration/lib.sh
if ! ls fuzz/fuzz-*.c >/dev/null 2>&1; then echo "no harnesses"; finish; exit; fi
if scripts/fuzz.sh "${ELOHIM_FUZZ_SECONDS:-8}"; then ok; else bad "a fuzz harness failed"; fi
finish
