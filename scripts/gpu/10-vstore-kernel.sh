# The resident-store search kernels alone vs PyTorch topk(Q @ X.T), same
# machine, same run (tuning aid; `elohim bench vector` is the full one).
set -e
"$BUNDLE"/bench/bench-vstore-cuda "${VSTORE_MAX_ROWS:-10000000}"
python3 bench/torch-topk.py "${VSTORE_MAX_ROWS:-10000000}"
