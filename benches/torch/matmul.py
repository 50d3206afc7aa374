"""PyTorch matmul GFLOP/s at n^3, timed like examples/matmul_gflops.rs (3 warm-ups, median).

Usage: python3 benches/torch/matmul.py [n (1024)] [reps (20)] [device (cpu; cuda, cuda:N)]
"""
import sys
import time

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
dev = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cpu")
torch.manual_seed(0)
a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
times = []
with torch.no_grad():
    for i in range(reps + 3):
        t = time.perf_counter()
        torch.matmul(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= 3:
            times.append(time.perf_counter() - t)
times.sort()
med = times[len(times) // 2]
where = (f"{dev} ({torch.cuda.get_device_name(dev)}, float32 matmul precision "
         f"{torch.get_float32_matmul_precision()})" if dev.type == "cuda"
         else f"cpu ({torch.get_num_threads()} threads)")
print(f"pytorch {torch.__version__} {where} matmul {n}^3: "
      f"median {med * 1e3:.2f} ms, {2 * n ** 3 / med / 1e9:.1f} GFLOP/s")
