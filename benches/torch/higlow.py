"""HIGlow's conditional Glow (arXiv 2211.12724, github friedmanroy/HI-generation) in plain PyTorch: the
PyTorch side of the Glow rows of BENCHMARKS.md, and the reference tools/golden/glow_golden.py compares
src/models/glow.rs with. Written from shared/REFERENCE.md sections 3-4 and a reading of HIGlow's modules;
the model is the one train_conditional.py trains (no plain actnorm, affine layers, temperature 1):

  x [N, C, S, S], condition c [N, K]
  block b < B:  squeeze 2x2 -> K_steps x step -> split the channels in two halves: the first half goes on,
                the second half is z_b, scored by the block's prior
  final block:  K_steps x step on what is left (no squeeze) -> z_B, scored by the final prior
  step:         invertible 1x1 conv (LU) -> affine injector -> conditional affine coupling
  log p(x | c) = sum_b log p_b(z_b | c) + sum of every layer's log|det|

  squeeze       y[n, 4c + 2i + j, a, b] = x[n, c, 2a + i, 2b + j]
  inv. 1x1 conv W = P (L + I) (U + diag(sign exp(log_s))), L strictly lower, U strictly upper (both stored as
                full C x C matrices and masked), P and sign fixed; y = conv2d(x, W) (y_o = sum_i W[o, i] x_i);
                log|det| = H W sum(log_s)
  conditioner   Conv3x3 (zero padding 1) -> ReLU -> Conv1x1 -> ReLU -> ZeroConv: pad with ONES, valid 3x3
                conv, times exp(3 scale); the first two convs start N(0, 0.05) with zero bias, the ZeroConv at 0
  injector      theta = net(c as K constant planes) -> (bias = first C channels, r = last C);
                ls = r clamped to [log 1e-3, 5] straight-through (forward clamps, gradient passes unchanged);
                y = x exp(ls) + bias; log|det| = sum ls
  coupling      (a, b) = channel halves; theta = net([a, c planes]) -> (r = first C/2, t = last C/2);
                s = (1 - m) sigmoid(r + 2) + m with m = clamp_val (0.5 in train_conditional.py);
                y = [a, (b + t) s]; log|det| = sum log s
  priors        diagonal Gaussians. Conditional (`-prior 1`): mean and log-variance from two MLPs
                K -> h -> h -> |z| (ReLU between, h = cond_hidden = 8, biases after the first layer start at 0),
                log-variance clamped to [-3, 5] straight-through. Learned: a free mean and log-variance per
                element of z (HIGlow sizes them on the first batch; here from the known shapes).

One deliberate generalisation: HIGlow sizes the final block's conditional prior as n_channels // 4 outputs,
which is the final latent's size only when the final map is 1 x 1 (S = 2^B, true of the published 64 x 64,
B = 6 model); here it is the latent's true size, so smaller maps work too. Identical whenever HIGlow's
own code runs. Sampling here draws the latents from the priors (mean + T exp(log_var / 2) eps), i.e. from
the trained density; HIGlow's own sample() / sample_latent() draw every latent from N(0, T^2 I) and ignore
the priors' means and variances (the cost of a sampling pass is the same either way).

Modes
  --check-count   asserts the published configuration (1 x 64 x 64, 6 blocks, K = 20, width 16, conditional
                  priors of width 8) has 4,503,312 trainable parameters and 6 blocks, K = 10 with learned
                  priors 2,222,312 (shared/REFERENCE.md section 3), then inverse(forward(x)) == x on a small
                  model with perturbed weights.
  speed (default) one training step = forward log p, loss = -mean log p / (C H W), backward,
                  clip_grad_norm_(2), Adam(3e-4) step, at --batch 64 on random maps and conditions in [-1, 1];
                  2 untimed warm-ups, then the median of --steps timed steps -> steps/s and maps/s. Sampling:
                  reverse pass at temperature 1 under no_grad (latents drawn from the priors inside the timed
                  region), batch 64, median of --sample-steps after 1 warm-up -> maps/s.

  python3 benches/torch/higlow.py --check-count
  python3 benches/torch/higlow.py --threads 2 --steps 5 --json
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

INJECTOR_CLAMP = (math.log(1e-3), 5.0)
LOG_VAR_CLAMP = (-3.0, 5.0)


def straight_through_clamp(v, lo, hi):
    """Clamped values forward, the identity's gradient backward."""
    return v + (v.clamp(lo, hi) - v).detach()


def squeeze2x2(x):
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return y.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze2x2(y):
    n, c4, h, w = y.shape
    x = y.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c4 // 4, 2 * h, 2 * w)


def condition_planes(c, h, w):
    """c [N, K] as K constant planes [N, K, h, w]."""
    return c[:, :, None, None].expand(-1, -1, h, w)


# ----------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------
class InvConv1x1(nn.Module):
    def __init__(self, c):
        super().__init__()
        # LU of a random orthogonal matrix: P fixed, L and U learned, the diagonal as sign * exp(log_s).
        q, _ = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))
        p, l, u = torch.linalg.lu(q)
        d = torch.diagonal(u)
        self.register_buffer('perm', p.float())
        self.register_buffer('sign', torch.sign(d).float())
        self.register_buffer('lower_mask', torch.tril(torch.ones(c, c), -1))
        self.register_buffer('upper_mask', torch.triu(torch.ones(c, c), 1))
        self.register_buffer('eye', torch.eye(c))
        self.lower = nn.Parameter(torch.tril(l, -1).float())
        self.upper = nn.Parameter(torch.triu(u, 1).float())
        self.log_s = nn.Parameter(d.abs().log().float())

    def weight(self):
        lo = self.lower * self.lower_mask + self.eye
        up = self.upper * self.upper_mask + torch.diag(self.sign * self.log_s.exp())
        return self.perm @ lo @ up

    def forward(self, x):
        h, w = x.shape[2:]
        return F.conv2d(x, self.weight()[:, :, None, None]), h * w * self.log_s.sum()

    def reverse(self, y):
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class ZeroConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=0)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.scale = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x):
        return self.conv(F.pad(x, (1, 1, 1, 1), value=1.0)) * torch.exp(3.0 * self.scale)


def conditioner(cin, hidden, cout):
    net = nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
        ZeroConv(hidden, cout),
    )
    for i in (0, 2):
        nn.init.normal_(net[i].weight, 0.0, 0.05)
        nn.init.zeros_(net[i].bias)
    return net


class Injector(nn.Module):
    """Conditional actnorm: a per-element affine map whose parameters depend only on the condition."""

    def __init__(self, c, k, hidden):
        super().__init__()
        self.net = conditioner(k, hidden, 2 * c)

    def params(self, x, c):
        theta = self.net(condition_planes(c, x.shape[2], x.shape[3]))
        bias, r = theta.chunk(2, dim=1)
        return bias, straight_through_clamp(r, *INJECTOR_CLAMP)

    def forward(self, x, c):
        bias, ls = self.params(x, c)
        return x * ls.exp() + bias, ls.flatten(1).sum(1)

    def reverse(self, y, c):
        bias, ls = self.params(y, c)
        return (y - bias) * (-ls).exp()


class Coupling(nn.Module):
    def __init__(self, c, k, hidden, floor):
        super().__init__()
        self.net = conditioner(c // 2 + k, hidden, c)
        self.floor = floor

    def scale_shift(self, a, c):
        theta = self.net(torch.cat([a, condition_planes(c, a.shape[2], a.shape[3])], dim=1))
        r, t = theta.chunk(2, dim=1)
        return (1.0 - self.floor) * torch.sigmoid(r + 2.0) + self.floor, t

    def forward(self, x, c):
        a, b = x.chunk(2, dim=1)
        s, t = self.scale_shift(a, c)
        return torch.cat([a, (b + t) * s], dim=1), s.log().flatten(1).sum(1)

    def reverse(self, y, c):
        a, b = y.chunk(2, dim=1)
        s, t = self.scale_shift(a, c)
        return torch.cat([a, b / s - t], dim=1)


class Step(nn.Module):
    def __init__(self, c, k, hidden, floor):
        super().__init__()
        self.inv = InvConv1x1(c)
        self.inj = Injector(c, k, hidden)
        self.cpl = Coupling(c, k, hidden, floor)

    def forward(self, x, c):
        x, ld_inv = self.inv(x)
        x, ld_inj = self.inj(x, c)
        x, ld_cpl = self.cpl(x, c)
        return x, ld_inv + ld_inj + ld_cpl

    def reverse(self, y, c):
        return self.inv.reverse(self.inj.reverse(self.cpl.reverse(y, c), c))


def prior_mlp(k, hidden, n):
    net = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, n))
    nn.init.zeros_(net[2].bias)
    nn.init.zeros_(net[4].bias)
    return net


class Prior(nn.Module):
    """Diagonal Gaussian over a latent of shape `shape` (per sample): conditional (cond_hidden > 0) or learned."""

    def __init__(self, shape, k, cond_hidden):
        super().__init__()
        self.shape = tuple(shape)
        n = math.prod(shape)
        self.conditional = cond_hidden > 0
        if self.conditional:
            self.mean = prior_mlp(k, cond_hidden, n)
            self.log_var = prior_mlp(k, cond_hidden, n)
        else:
            self.mean = nn.Parameter(torch.zeros(*shape))
            self.log_var = nn.Parameter(torch.zeros(*shape))

    def params(self, c):
        """(mean, log-variance), each [N or 1, n]."""
        if self.conditional:
            return self.mean(c), straight_through_clamp(self.log_var(c), *LOG_VAR_CLAMP)
        return self.mean.reshape(1, -1), self.log_var.reshape(1, -1)

    def log_prob(self, z, c):
        mean, lv = self.params(c)
        z = z.flatten(1)
        n = z.shape[1]
        quad = ((z - mean) ** 2 * (-lv).exp()).sum(1)
        return -0.5 * quad - 0.5 * lv.sum(1) - 0.5 * n * math.log(2 * math.pi)

    def sample(self, c, temp=1.0):
        mean, lv = self.params(c)
        eps = torch.randn(c.shape[0], mean.shape[1], dtype=mean.dtype, device=mean.device)
        return (mean + temp * (0.5 * lv).exp() * eps).reshape(-1, *self.shape)


class CondGlow(nn.Module):
    def __init__(self, channels=1, side=64, cond=2, blocks=6, steps=20, hidden=16, cond_hidden=8, floor=0.5):
        """cond_hidden > 0: conditional priors of that width; 0: learned priors."""
        super().__init__()
        assert side % (2 ** blocks) == 0, 'the side must be divisible by 2^blocks'
        self.cfg = dict(channels=channels, side=side, cond=cond, blocks=blocks, steps=steps, hidden=hidden,
                        cond_hidden=cond_hidden, floor=floor)
        self.blocks = nn.ModuleList()
        self.priors = nn.ModuleList()
        c, s = channels, side
        for b in range(blocks + 1):
            if b < blocks:
                c, s = 4 * c, s // 2
            self.blocks.append(nn.ModuleList([Step(c, cond, hidden, floor) for _ in range(steps)]))
            zc = c // 2 if b < blocks else c
            self.priors.append(Prior((zc, s, s), cond, cond_hidden))
            if b < blocks:
                c //= 2

    @property
    def n_blocks(self):
        return self.cfg['blocks']

    def encode(self, x, c):
        """(latents, one per block: the split-off halves, then the final output; log|det| per map)."""
        zs, ld = [], 0.0
        for b, steps in enumerate(self.blocks):
            if b < self.n_blocks:
                x = squeeze2x2(x)
            for st in steps:
                x, l = st(x, c)
                ld = ld + l
            if b < self.n_blocks:
                x, z = x.chunk(2, dim=1)
                zs.append(z)
            else:
                zs.append(x)
        return zs, ld

    def log_prob(self, x, c):
        zs, ld = self.encode(x, c)
        return ld + sum(pr.log_prob(z, c) for pr, z in zip(self.priors, zs))

    @torch.no_grad()
    def reverse(self, zs, c):
        x = zs[-1]
        for b in range(self.n_blocks, -1, -1):
            if b < self.n_blocks:
                x = torch.cat([x, zs[b]], dim=1)
            for st in reversed(self.blocks[b]):
                x = st.reverse(x, c)
            if b < self.n_blocks:
                x = unsqueeze2x2(x)
        return x

    @torch.no_grad()
    def sample(self, c, temp=1.0):
        return self.reverse([pr.sample(c, temp) for pr in self.priors], c)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------
def check_count():
    published = CondGlow(blocks=6, steps=20, hidden=16, cond_hidden=8)
    n = trainable(published)
    assert n == 4_503_312, n
    learned = CondGlow(blocks=6, steps=10, hidden=16, cond_hidden=0)
    m = trainable(learned)
    assert m == 2_222_312, m
    print('published (6 blocks, K=20, width 16, conditional priors): %d parameters' % n)
    print('6 blocks, K=10, learned priors: %d parameters' % m)
    # Invertibility with every weight off its identity-like start.
    torch.manual_seed(1)
    small = CondGlow(side=8, blocks=3, steps=2, hidden=4, cond_hidden=3)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    c = torch.rand(5, 2) * 2 - 1
    with torch.no_grad():
        zs, _ = small.encode(x, c)
        back = small.reverse(zs, c)
    err = (back - x).abs().max().item()
    assert err < 1e-4, err
    print('inverse(forward(x)) == x: max error %.2e' % err)


def speed(args):
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = CondGlow(blocks=args.blocks, steps=args.flows, hidden=args.hidden,
                     cond_hidden=args.cond_hidden).to(dev)
    side, b = model.cfg['side'], args.batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    pool = [(torch.rand(b, 1, side, side, device=dev) * 2 - 1, torch.rand(b, 2, device=dev) * 2 - 1)
            for _ in range(2)]
    dims = side * side

    def sync():
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    def train_step(i):
        x, c = pool[i % len(pool)]
        opt.zero_grad(set_to_none=True)
        loss = -model.log_prob(x, c).mean() / dims
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        return loss.item()

    for i in range(2):
        train_step(i)
    times, loss = [], float('nan')
    for i in range(args.steps):
        sync()
        t = time.perf_counter()
        loss = train_step(i)
        sync()
        times.append(time.perf_counter() - t)
    train_s = statistics.median(times)

    c = pool[0][1]
    model.sample(c)
    stimes = []
    for _ in range(args.sample_steps):
        sync()
        t = time.perf_counter()
        x = model.sample(c)
        sync()
        stimes.append(time.perf_counter() - t)
    assert torch.isfinite(x).all()
    sample_s = statistics.median(stimes)
    res = {'impl': 'pytorch', 'torch': torch.__version__, 'device': args.device, 'threads': torch.get_num_threads(),
           'params': trainable(model), 'blocks': args.blocks, 'flows': args.flows, 'batch': b,
           'train_steps_per_s': round(1.0 / train_s, 4), 'train_maps_per_s': round(b / train_s, 3),
           'sample_maps_per_s': round(b / sample_s, 3), 'final_loss': round(loss, 5)}
    if args.json:
        print(json.dumps(res))
    else:
        print('pytorch %s, %d threads, %d parameters: train %.3f steps/s (%.2f maps/s), sample %.2f maps/s, '
              'loss %.4f' % (args.device, res['threads'], res['params'], res['train_steps_per_s'],
                             res['train_maps_per_s'], res['sample_maps_per_s'], loss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check-count', action='store_true', help='assert the published parameter counts, then exit')
    ap.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave the default)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--blocks', type=int, default=6)
    ap.add_argument('--flows', type=int, default=20, help='steps per block (K)')
    ap.add_argument('--hidden', type=int, default=16)
    ap.add_argument('--cond-hidden', type=int, default=8, help='conditional prior width; 0: learned priors')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--steps', type=int, default=5, help='timed training steps (median reported)')
    ap.add_argument('--sample-steps', type=int, default=3, help='timed sampling batches (median reported)')
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.check_count:
        check_count()
        return 0
    speed(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
