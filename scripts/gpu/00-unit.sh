# Every bundled unit test on the GPU machine (their CUDA cases run there;
# on a machine without a GPU they skip).
status=0
for t in "$TESTS"/test-*; do
    if "$t" >"$OUT/$(basename "$t").log" 2>&1; then
        echo "ok    $(basename "$t")"
    else
        echo "FAIL  $(basename "$t")"; tail -n 20 "$OUT/$(basename "$t").log"; status=1
    fi
done
exit $status
