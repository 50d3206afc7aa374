"""PyTorch CPU conv2d / conv_transpose2d forward + backward GFLOP/s at the galaxy autoencoder's k4 s2 p1 shapes,
the same cases and flop count as the `conv_fwd_bwd` group of benches/ops.rs (3 warm-ups, median of reps).

Usage: python3 benches/torch/conv.py [batch (4)] [reps (5)] [threads (2)] [device (cpu; cuda, cuda:N)]
"""
import sys
import time

import torch
import torch.nn.functional as F

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 4
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
torch.manual_seed(0)

# (name, transposed, cin, cout, input side): encoder layers 1, 2 and 5 and their decoder mirrors.
SHAPES = [
    ('enc 3->64 @448', False, 3, 64, 448),
    ('enc 64->128 @224', False, 64, 128, 224),
    ('enc 512->1024 @28', False, 512, 1024, 28),
    ('dec 1024->512 @14', True, 1024, 512, 14),
    ('dec 128->64 @112', True, 128, 64, 112),
    ('dec 64->3 @224', True, 64, 3, 224),
]

where = f"{dev} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
print(f"pytorch {torch.__version__} {where}, batch {batch}, forward + backward")
for name, tr, cin, cout, side in SHAPES:
    x = torch.randn(batch, cin, side, side, device=dev, requires_grad=True)
    w = torch.randn(*((cin, cout) if tr else (cout, cin)), 4, 4, device=dev, requires_grad=True)
    b = torch.randn(cout, device=dev, requires_grad=True)
    out = side * 2 if tr else side // 2
    macs = batch * cin * side * side * cout * 16 if tr else batch * cout * out * out * cin * 16
    f = F.conv_transpose2d if tr else F.conv2d
    times = []
    for i in range(reps + 3):
        t = time.perf_counter()
        y = f(x, w, b, stride=2, padding=1)
        y.sum().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= 3:
            times.append(time.perf_counter() - t)
        x.grad = w.grad = b.grad = None
    times.sort()
    med = times[len(times) // 2]
    print(f"{name:<20} median {med * 1e3:9.2f} ms  {3 * 2 * macs / med / 1e9:7.1f} GFLOP/s")
