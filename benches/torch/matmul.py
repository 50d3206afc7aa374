"""PyTorch CPU matmul GFLOP/s at n^3, timed like examples/matmul_gflops.rs (3 warm-ups, median)."""
import sys
import time

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
torch.manual_seed(0)
a, b = torch.randn(n, n), torch.randn(n, n)
times = []
with torch.no_grad():
    for i in range(reps + 3):
        t = time.perf_counter()
        torch.matmul(a, b)
        if i >= 3:
            times.append(time.perf_counter() - t)
times.sort()
med = times[len(times) // 2]
print(f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads) matmul {n}^3: "
      f"median {med * 1e3:.2f} ms, {2 * n ** 3 / med / 1e9:.1f} GFLOP/s")
