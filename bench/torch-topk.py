"""PyTorch peer for exact top-k on the GPU: torch.topk(Q @ X.T), the store
resident on the GPU, timed with CUDA events (median of repeats).
Usage: python3 bench/torch-topk.py [max_rows]"""
import sys
import torch

def main():
    max_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    dev = torch.device("cuda")
    dim, k = 384, 10
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    print(f"{'rows':<10} {'dtype':<5} {'queries':<7} {'median_ms':>10}")
    for rows in (1_000_000, 10_000_000):
        if rows > max_rows:
            continue
        for dtype in (torch.float32, torch.float16):
            x = (torch.rand(rows, dim, device=dev) * 2 - 1).mul_(0.1).to(dtype)
            for nq in (1, 16, 1024):
                q = torch.nn.functional.normalize(torch.rand(nq, dim, device=dev) * 2 - 1, dim=1).to(dtype)
                def run():
                    return torch.topk(q @ x.T, k, dim=1)
                for _ in range(3):
                    run()
                times = []
                reps = 10 if rows >= 10_000_000 else 30
                for _ in range(reps):
                    a = torch.cuda.Event(enable_timing=True)
                    b = torch.cuda.Event(enable_timing=True)
                    a.record()
                    vals, idx = run()
                    idx.cpu()   # the ids reach the host, as ours do
                    b.record()
                    torch.cuda.synchronize()
                    times.append(a.elapsed_time(b))
                times.sort()
                name = "f32" if dtype == torch.float32 else "f16"
                print(f"{rows:<10} {name:<5} {nq:<7} {times[len(times)//2]:>10.3f}", flush=True)
            del x
            torch.cuda.empty_cache()

if __name__ == "__main__":
    main()
