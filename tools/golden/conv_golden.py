"""PyTorch golden values for conv2d / conv_transpose2d (tests/golden.rs compares our CPU and WGPU ops with them).

Writes small float32 .npy fixtures into tests/fixtures/conv/ (committed, so tests need no PyTorch):
- small cases, every tensor in full: <case>_{x,w,b,gy,y,gx,gw,gb}.npy (b/gb only with a bias), where gy is the
  upstream gradient of loss = sum(y * gy);
- the autoencoder's first encoder layer (Conv2d(3, 64, 4, 2, 1) at 448x448) and last decoder layer
  (ConvTranspose2d(64, 3, 4, 2, 1) at 224 -> 448) at full size, with inputs from formulas both sides compute
  (see `formula`), storing for y and gx only their sum of squares (`_sumsq`) and the values (`_val`) at ~SAMPLES flat positions
  (`_idx`, as float32: exact below 2^24), and gw, gb in full.

Usage: python3 tools/golden/conv_golden.py   (from any directory; CPU only, a few seconds)
"""
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[2] / 'tests' / 'fixtures' / 'conv'
SAMPLES = 256

# (name, transposed, x shape, w shape, stride, padding, bias)
SMALL = [
    ('conv_k4s2p1', False, (2, 3, 12, 12), (8, 3, 4, 4), 2, 1, True),
    ('convT_k4s2p1', True, (2, 8, 6, 6), (8, 3, 4, 4), 2, 1, True),
    ('conv_k3s1p1', False, (2, 4, 7, 9), (5, 4, 3, 3), 1, 1, True),
    ('conv_k1s1p0', False, (2, 6, 5, 5), (7, 6, 1, 1), 1, 0, False),
    ('convT_k3s1p1', True, (1, 5, 6, 5), (5, 4, 3, 3), 1, 1, False),
    ('conv_k3s2p0', False, (1, 3, 10, 9), (4, 3, 3, 3), 2, 0, True),
]

# (name, transposed, x shape, w shape): the autoencoder's outer layers at their real size, k4 s2 p1 with a bias.
LARGE = [
    ('ae_enc1', False, (1, 3, 448, 448), (64, 3, 4, 4)),
    ('ae_dec6', True, (1, 64, 224, 224), (64, 3, 4, 4)),
]


def formula(shape, a, phase, offset, scale):
    """v[i] = offset + scale * sin(a * i + phase) over the flat index i, in float64 then rounded to float32.
    tests/golden.rs computes the same values."""
    i = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (offset + scale * np.sin(a * i + phase)).astype(np.float32).reshape(shape)


def run(transposed, x, w, b, gy_fn, stride, padding):
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True) if b is not None else None
    f = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    y = f(xt, wt, bt, stride=stride, padding=padding)
    gy = gy_fn(tuple(y.shape))
    (y * torch.from_numpy(gy)).sum().backward()
    out = {'gy': gy, 'y': y.detach().numpy(), 'gx': xt.grad.numpy(), 'gw': wt.grad.numpy()}
    if bt is not None:
        out['gb'] = bt.grad.numpy()
    return out


def save(name, key, a):
    np.save(OUT / ('%s_%s.npy' % (name, key)), np.ascontiguousarray(a, dtype=np.float32))


def sample_idx(n):
    # Spread over the whole tensor, first and last element included (the indices are stored).
    return np.array(sorted({(k * 2654435761 + 12345) % n for k in range(SAMPLES)} | {0, n - 1}), dtype=np.int64)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, tr, xs, ws, s, p, bias in SMALL:
        cout = ws[1] if tr else ws[0]
        x = rng.uniform(-1, 1, xs).astype(np.float32)
        w = rng.uniform(-1, 1, ws).astype(np.float32)
        b = rng.uniform(-1, 1, (cout,)).astype(np.float32) if bias else None
        res = run(tr, x, w, b, lambda shape: rng.uniform(-1, 1, shape).astype(np.float32), s, p)
        save(name, 'x', x)
        save(name, 'w', w)
        if bias:
            save(name, 'b', b)
        for k, v in res.items():
            save(name, k, v)
    for name, tr, xs, ws in LARGE:
        cout = ws[1] if tr else ws[0]
        # Inputs in [0, 1] like the images and the ReLU outputs these layers see, and a positive upstream
        # gradient: the weight and bias gradients sum ~200k terms, which must not cancel down to rounding noise.
        x = formula(xs, 0.37, 0.1, 0.5, 0.5)
        w = formula(ws, 1.3, 0.5, 0.0, 0.1)
        b = formula((cout,), 0.7, 0.3, 0.0, 0.05)
        res = run(tr, x, w, b, lambda shape: formula(shape, 0.11, 0.2, 0.5, 0.5), 2, 1)
        for key in ('y', 'gx'):
            flat = res[key].reshape(-1).astype(np.float64)
            idx = sample_idx(flat.size)
            save(name, key + '_idx', idx.astype(np.float32))
            save(name, key + '_val', flat[idx])
            save(name, key + '_sumsq', np.array([np.sum(flat * flat)]))
        save(name, 'gw', res['gw'])
        save(name, 'gb', res['gb'])
    total = sum(f.stat().st_size for f in OUT.glob('*.npy'))
    print('wrote %d files, %.1f kB, to %s' % (len(list(OUT.glob('*.npy'))), total / 1024, OUT))


if __name__ == '__main__':
    main()
