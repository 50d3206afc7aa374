"""GalacticFlow's conditional neural spline flow ("NSFlow") in plain PyTorch: the PyTorch side of the
NSF rows of BENCHMARKS.md. No nflows dependency; the spline follows nflows' maths exactly as written in
kernels/README.md ("spline"). Model (shared/REFERENCE.md section 1):

  base N(0, I) on D = 10 features; `--layers` (14) repeats of
    LU linear:  W = P L (U + diag(S)), L unit lower, P fixed permutation, orthogonal init;
                y = x W, log|det| = sum log|S|
    double coupling: a = x[:5], b = x[5:]; b' = spline(b; net1(a, c)); a' = spline(a; net2(b', c));
                out = [a', b']
  spline parameters = net_cond(c) * net(x_half) elementwise, each an MLP of 4 Linear layers, width 128,
  LeakyReLU(0.2) after every layer (the last too), output size dims_half * (3K - 1), read as
  [batch, dims_half, 3K - 1] = K raw widths, K raw heights, K - 1 raw inner derivatives.
  Spline: K = `--bins` (10) bins on [-3, 3], identity outside, min bin width/height/derivative 1e-3,
  edge derivatives 1. Loss -mean(log N(z) + logdet).

Measures, on this CPU (or on `--device cuda`, with the timers read after torch.cuda.synchronize):
  train:  stars/s of forward + backward + RAdam step (lr 9e-5), batch 1024, random N(0, 1) stars and
          N(0, 1) conditions (a pool of 8 pre-drawn batches, cycled), after `--warmup` untimed steps;
          stars/s = batch * steps / time.
  sample: stars/s of the inverse pass under torch.no_grad, one condition repeated for every star (as
          GalacticFlow's sampling does), z ~ N(0, I) drawn inside the timed region, chunks of <= 300000.
`--check` verifies inverse(forward(x)) == x (float32, 1e-4) and the log-det against
torch.autograd.functional.jacobian (float64) on a small config, then exits.

  python3 benches/torch/nsf.py --threads 2 --train-steps 50 --sample-stars 300000 --json
  python3 benches/torch/nsf.py --check
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BOUND = 3.0
MIN_W = MIN_H = MIN_D = 1e-3
CHUNK = 300_000


# ----------------------------------------------------------------------------------------------------
# Rational-quadratic spline (nflows' unconstrained_rational_quadratic_spline, linear tails)
# ----------------------------------------------------------------------------------------------------
def _knots(raw, min_size, bound):
    """Raw bin sizes [..., K] -> knot positions [..., K + 1] on [-bound, bound] and bin sizes [..., K]."""
    k = raw.shape[-1]
    p = F.softmax(raw, dim=-1)
    p = min_size + (1.0 - min_size * k) * p
    inner = -bound + 2.0 * bound * torch.cumsum(p, dim=-1)[..., :-1]  # X_1 .. X_{K-1}, summed in order
    lo = inner.new_full(inner.shape[:-1] + (1,), -bound)
    hi = inner.new_full(inner.shape[:-1] + (1,), bound)
    knots = torch.cat([lo, inner, hi], dim=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


def rq_spline(x, theta, bins, inverse=False, bound=BOUND):
    """Element-wise monotonic RQ spline. x: [..., d]; theta: [..., d, 3K - 1] raw parameters.

    Returns (y, logabsdet) with logabsdet per element ([..., d]); identity with log-det 0 outside
    [-bound, bound]. Every element is evaluated on its value clamped into [-bound, bound] and the tails
    are selected with torch.where, so no masked gathers/scatters and no NaN in the unused branch.
    """
    u, v, r = theta[..., :bins], theta[..., bins:2 * bins], theta[..., 2 * bins:]
    xk, wk = _knots(u, MIN_W, bound)
    yk, hk = _knots(v, MIN_H, bound)
    one = r.new_ones(r.shape[:-1] + (1,))
    d = torch.cat([one, MIN_D + F.softplus(r), one], dim=-1)  # [..., d, K + 1]

    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound).unsqueeze(-1)
    # bin = the largest k < K with knot_k <= value
    idx = torch.searchsorted((yk if inverse else xk).detach().contiguous(), xc.detach().contiguous(),
                             right=True) - 1
    idx = idx.clamp(0, bins - 1)

    X0 = xk.gather(-1, idx).squeeze(-1)
    W = wk.gather(-1, idx).squeeze(-1)
    Y0 = yk.gather(-1, idx).squeeze(-1)
    H = hk.gather(-1, idx).squeeze(-1)
    d0 = d.gather(-1, idx).squeeze(-1)
    d1 = d.gather(-1, idx + 1).squeeze(-1)
    s = H / W
    xc = xc.squeeze(-1)

    if not inverse:
        xi = (xc - X0) / W
        q = xi * (1.0 - xi)
        den = s + (d0 + d1 - 2.0 * s) * q
        y = Y0 + H * (s * xi * xi + d0 * q) / den
    else:
        t = xc - Y0
        c2 = d0 + d1 - 2.0 * s
        a = H * (s - d0) + t * c2
        b = H * d0 - t * c2
        c = -s * t
        disc = (b * b - 4.0 * a * c).clamp_min(0.0)
        xi = (2.0 * c) / (-b - torch.sqrt(disc))
        q = xi * (1.0 - xi)
        den = s + c2 * q
        y = X0 + xi * W
    m = d1 * xi * xi + 2.0 * s * q + d0 * (1.0 - xi) ** 2
    ld = 2.0 * torch.log(s) + torch.log(m) - 2.0 * torch.log(den)
    if inverse:
        ld = -ld
    y = torch.where(inside, y, x)
    ld = torch.where(inside, ld, torch.zeros_like(ld))
    return y, ld


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------
def mlp(n_in, n_out, hidden=128, n_layers=4, slope=0.2):
    dims = [n_in] + [hidden] * (n_layers - 1) + [n_out]
    layers = []
    for i in range(n_layers):
        layers += [nn.Linear(dims[i], dims[i + 1]), nn.LeakyReLU(slope)]  # LeakyReLU after the last too
    return nn.Sequential(*layers)


class LULinear(nn.Module):
    """y = x W, W = P L (U + diag(S)). L and U are stored as full 10x10 parameters and masked (as in
    GalacticFlow), so they count 2 * D^2 parameters of which only D (D - 1) are free."""

    def __init__(self, dim):
        super().__init__()
        w0 = nn.init.orthogonal_(torch.randn(dim, dim))
        p, l, u = torch.linalg.lu(w0)
        self.register_buffer("P", p)
        self.register_buffer("eye", torch.eye(dim))
        self.L = nn.Parameter(l)
        self.U = nn.Parameter(torch.triu(u, diagonal=1))
        self.S = nn.Parameter(torch.diagonal(u).clone())

    def weight(self):
        lo = torch.tril(self.L, diagonal=-1) + self.eye
        up = torch.triu(self.U, diagonal=1) + torch.diag(self.S)
        return self.P @ lo @ up, torch.log(torch.abs(self.S)).sum()

    def forward(self, x, c):
        w, ld = self.weight()
        return x @ w, ld.expand(x.shape[0])

    def inverse(self, y, c):
        w, ld = self.weight()
        return y @ torch.linalg.inv(w), (-ld).expand(y.shape[0])


class DoubleCoupling(nn.Module):
    def __init__(self, dim, n_cond, bins, hidden=128):
        super().__init__()
        self.h, self.bins = dim // 2, bins
        self.rest = dim - self.h
        p = 3 * bins - 1
        self.net1 = mlp(self.h, self.rest * p, hidden)      # a -> parameters for b
        self.net2 = mlp(self.rest, self.h * p, hidden)      # b' -> parameters for a
        self.cond1 = mlp(n_cond, self.rest * p, hidden) if n_cond > 0 else None
        self.cond2 = mlp(n_cond, self.h * p, hidden) if n_cond > 0 else None
        self.cond_once = False  # evaluate net_cond on c[:1] and broadcast (valid when every row of c is equal)

    def _theta(self, net, cnet, half, c, n_out):
        t = net(half)
        if cnet is not None:
            t = t * cnet(c[:1] if self.cond_once else c)
        return t.reshape(half.shape[0], n_out, 3 * self.bins - 1)

    def forward(self, x, c):
        a, b = x[:, :self.h], x[:, self.h:]
        b, ld1 = rq_spline(b, self._theta(self.net1, self.cond1, a, c, self.rest), self.bins)
        a, ld2 = rq_spline(a, self._theta(self.net2, self.cond2, b, c, self.h), self.bins)
        return torch.cat([a, b], dim=1), ld1.sum(1) + ld2.sum(1)

    def inverse(self, y, c):
        a, b = y[:, :self.h], y[:, self.h:]
        a, ld2 = rq_spline(a, self._theta(self.net2, self.cond2, b, c, self.h), self.bins, inverse=True)
        b, ld1 = rq_spline(b, self._theta(self.net1, self.cond1, a, c, self.rest), self.bins, inverse=True)
        return torch.cat([a, b], dim=1), ld1.sum(1) + ld2.sum(1)


class NSFlow(nn.Module):
    def __init__(self, dim=10, n_cond=4, layers=14, bins=10, hidden=128):
        super().__init__()
        self.dim = dim
        mods = []
        for _ in range(layers):
            mods += [LULinear(dim), DoubleCoupling(dim, n_cond, bins, hidden)]
        self.layers = nn.ModuleList(mods)

    def set_cond_once(self, on):
        for m in self.layers:
            if isinstance(m, DoubleCoupling):
                m.cond_once = on

    def forward(self, x, c):
        """x -> (z, logdet)."""
        ld = x.new_zeros(x.shape[0])
        for m in self.layers:
            x, l = m(x, c)
            ld = ld + l
        return x, ld

    def inverse(self, z, c):
        ld = z.new_zeros(z.shape[0])
        for m in reversed(self.layers):
            z, l = m.inverse(z, c)
            ld = ld + l
        return z, ld

    def log_prob(self, x, c):
        z, ld = self(x, c)
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * math.log(2 * math.pi) + ld

    def sample(self, n, c_row, chunk=CHUNK):
        """n stars for one condition row c_row [C], in chunks of <= chunk; call under torch.no_grad."""
        out = []
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            z = torch.randn(m, self.dim, device=c_row.device)
            out.append(self.inverse(z, c_row.expand(m, -1))[0])
        return torch.cat(out)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def n_free_params(model):
    """Parameters minus the masked-out halves of the stored L and U matrices."""
    masked = sum(m.L.numel() - m.L.shape[0] * (m.L.shape[0] - 1) // 2
                 + m.U.numel() - m.U.shape[0] * (m.U.shape[0] - 1) // 2
                 for m in model.modules() if isinstance(m, LULinear))
    return n_params(model) - masked


# ----------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------
def _perturb(model, gen):
    """Move away from the near-identity init so the check exercises uneven bins and a non-unit det."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LULinear):
                m.S.mul_(torch.empty_like(m.S).uniform_(0.5, 2.0, generator=gen))
                m.L.add_(0.3 * torch.randn(m.L.shape, generator=gen))
                m.U.add_(0.3 * torch.randn(m.U.shape, generator=gen))
            elif isinstance(m, nn.Sequential):
                last = m[-2]
                last.weight.mul_(4.0)
                last.bias.add_(0.5 * torch.randn(last.bias.shape, generator=gen))


def run_check(args):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    ok = True
    for perturbed in (False, True):
        model = NSFlow(10, args.conditions, layers=2, bins=args.bins)
        if perturbed:
            _perturb(model, gen)
        tag = "perturbed" if perturbed else "init"
        x = 1.5 * torch.randn(4096, 10, generator=gen)  # ~4.5% of entries beyond |3|: tails exercised
        c = torch.randn(4096, args.conditions, generator=gen)
        with torch.no_grad():
            z, ld = model(x, c)
            xr, ldi = model.inverse(z, c)
        err = (xr - x).abs().max().item()
        lderr = (ld + ldi).abs().max().item()
        good = err < 1e-4 and lderr < 1e-3 and bool(torch.isfinite(z).all())
        ok &= good
        print(f"[{tag}] float32 inverse(forward(x)) max|err| = {err:.2e}, "
              f"max|ld_fwd + ld_inv| = {lderr:.2e}  {'OK' if good else 'FAIL'}")

        md = model.double()
        worst = 0.0
        for i in range(6):
            xi = x[i].double().clone()
            if i == 0:
                xi[:3] = torch.tensor([3.5, -3.2, 2.999], dtype=torch.float64)  # tails and edge
            ci = c[i:i + 1].double()
            jac = torch.autograd.functional.jacobian(lambda v: md(v.unsqueeze(0), ci)[0].squeeze(0), xi)
            ref = torch.linalg.slogdet(jac).logabsdet.item()
            got = md(xi.unsqueeze(0), ci)[1].item()
            worst = max(worst, abs(ref - got))
        good = worst < 1e-6
        ok &= good
        print(f"[{tag}] float64 logdet vs log|det jacobian| on 6 samples: max|diff| = {worst:.2e}  "
              f"{'OK' if good else 'FAIL'}")
    # gradient of the spline against float64 finite differences, through theta and x
    th = torch.randn(3, 5, 3 * args.bins - 1, dtype=torch.float64, requires_grad=True)
    xs = (2.0 * torch.randn(3, 5, dtype=torch.float64)).requires_grad_(True)
    good = torch.autograd.gradcheck(lambda a, t: rq_spline(a, t, args.bins), (xs, th))
    good &= torch.autograd.gradcheck(lambda a, t: rq_spline(a, t, args.bins, inverse=True), (xs, th))
    ok &= good
    print(f"spline gradcheck (forward and inverse, float64): {'OK' if good else 'FAIL'}")
    print("CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------------------------
def sync(dev):
    """Waits for queued GPU work, so that a timer read afterwards covers it."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_train(model, args):
    dev = torch.device(args.device)
    opt = torch.optim.RAdam(model.parameters(), lr=9e-5)
    pool = [(torch.randn(args.batch, 10, device=dev), torch.randn(args.batch, args.conditions, device=dev))
            for _ in range(8)]

    def step(i):
        x, c = pool[i % len(pool)]
        loss = -model.log_prob(x, c).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(args.warmup):
        step(i)
    sync(dev)
    t = time.perf_counter()
    for i in range(args.train_steps):
        loss = step(i)
    sync(dev)
    dt = time.perf_counter() - t
    return dt, loss.item()


def bench_sample(model, args):
    dev = torch.device(args.device)
    c_row = torch.randn(args.conditions, device=dev)
    model.set_cond_once(args.cond_once)
    with torch.no_grad():
        model.sample(min(1024, args.sample_stars), c_row)  # warm-up
        sync(dev)
        t = time.perf_counter()
        x = model.sample(args.sample_stars, c_row)
        sync(dev)
        dt = time.perf_counter() - t
    model.set_cond_once(False)
    return dt, bool(torch.isfinite(x).all())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=14)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--train-steps", type=int, default=50, help="timed steps (0: skip)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    ap.add_argument("--sample-stars", type=int, default=300_000, help="stars to sample (0: skip)")
    ap.add_argument("--cond-once", action="store_true",
                    help="sampling: run net_cond once per chunk on the single condition and broadcast "
                         "(GalacticFlow runs it on the repeated condition, the default here)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="torch device of the benchmarks (cpu, cuda, cuda:N)")
    ap.add_argument("--json", action="store_true", help="print one JSON line of results")
    ap.add_argument("--check", action="store_true", help="run the correctness checks and exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        sys.exit(run_check(args))

    torch.manual_seed(args.seed)
    model = NSFlow(10, args.conditions, args.layers, args.bins).to(args.device)
    res = {"bench": "nsf", "impl": f"pytorch {torch.__version__}", "device": args.device,
           "threads": torch.get_num_threads(),
           "conditions": args.conditions, "batch": args.batch, "layers": args.layers, "bins": args.bins,
           "params": n_params(model), "free_params": n_free_params(model)}
    if args.train_steps > 0:
        dt, loss = bench_train(model, args)
        res.update(train_steps=args.train_steps, train_s=dt,
                   train_stars_per_s=args.batch * args.train_steps / dt, final_loss=loss)
    if args.sample_stars > 0:
        dt, finite = bench_sample(model, args)
        res.update(sample_stars=args.sample_stars, sample_s=dt, sample_stars_per_s=args.sample_stars / dt,
                   sample_chunk=CHUNK, sample_cond_once=args.cond_once, sample_finite=finite)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"pytorch {torch.__version__} {args.device} ({res['threads']} threads) NSF {args.layers} layers, "
              f"K={args.bins}, {args.conditions} conditions: {res['params']} parameters "
              f"({res['free_params']} free; L, U stored as full {10}x{10})")
        if "train_s" in res:
            print(f"  train  batch {args.batch}, {args.train_steps} steps: {res['train_s']:.3f} s, "
                  f"{res['train_stars_per_s']:.0f} stars/s (loss {res['final_loss']:.4f})")
        if "sample_s" in res:
            print(f"  sample {args.sample_stars} stars: {res['sample_s']:.3f} s, "
                  f"{res['sample_stars_per_s']:.0f} stars/s")


if __name__ == "__main__":
    main()
