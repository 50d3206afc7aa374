"""PyTorch golden values for HIGlow's conditional Glow (tests/glow_golden.rs compares src/models/glow.rs with them).

Builds small models with benches/torch/higlow.py (the plain-PyTorch port of HIGlow's CondGlow), sets every
parameter and buffer to random values (not the zero / identity start, so every layer changes the result),
and writes one committed .npz per case into tests/fixtures/glow/ (so tests need no PyTorch):

  glow.*          every parameter and buffer under galactic-forge's variable names and layouts
                  (src/models/glow.rs, src/nn/*.rs):
                    glow.{b}.{k}.inv.{lower, upper, log_s, perm, sign}   W = perm (I + lower) (upper + diag(sign e^log_s)),
                                                                          applied as conv2d(x, W)
                    glow.{b}.{k}.{inj, cpl}.net.{0, 1}.{w [out, in, k, k], b}
                    glow.{b}.{k}.{inj, cpl}.net.2.{w, b, scale [cout]}    (the ZeroConv)
                    glow.{b}.prior.{mean, log_var}.{0, 1, 2}.{w [in, out] (torch's transposed), b}  conditional
                    glow.{b}.prior.{mean, log_var} [|z|] (C, H, W order)                            learned
  x, c            inputs: maps [N, 1, S, S] in [-1, 1], conditions [N, 2] in [-1, 1]
  log_p           log p(x | c) per map [N]
  z.{b}           the latent of block b (encode's output)
  grad.glow.*     d sum(log p) / d parameter, for every trainable parameter (our layout)
  zfix.{b}, xrev  fixed latents ~ N(0, 1) and the maps reverse() makes of them with c

Cases (both 1 x 8 x 8 maps, K = 2 steps per block, width 4, coupling floor 0.5, N = 4):
  cond          3 blocks, conditional priors of width 3. HIGlow sizes its final conditional prior as
                n_channels // 4 outputs, right only when the final map is 1 x 1, so side 8 needs 3 blocks to
                run HIGlow's own code path.
  learned       2 blocks (final map 2 x 2), learned priors.
  cond_clamped  `cond` with one injector log-scale channel pushed below log 1e-3 and one conditional prior
                log-variance above 5, so both straight-through clamps are active. Stores only the three
                parameters that differ from cond.npz (the test loads cond.npz, then these), the gradients of
                the parameters next to the clamps (glow.0.0.*, the final prior's), and no zfix / xrev (see
                FORWARD_ONLY).

Usage: python3 tools/golden/glow_golden.py   (from any directory; CPU only, a few seconds)
"""
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benches' / 'torch'))
import higlow  # noqa: E402

OUT = ROOT / 'tests' / 'fixtures' / 'glow'
N = 4

# name -> CondGlow kwargs
CASES = {
    'cond': dict(side=8, blocks=3, steps=2, hidden=4, cond_hidden=3, floor=0.5),
    'learned': dict(side=8, blocks=2, steps=2, hidden=4, cond_hidden=0, floor=0.5),
    'cond_clamped': dict(side=8, blocks=3, steps=2, hidden=4, cond_hidden=3, floor=0.5),
}
# Cases without a reverse pass: a log-scale clamped at log 1e-3 makes the inverse scale that channel by 1e3,
# so decoding random latents would compare amplified rounding.
FORWARD_ONLY = {'cond_clamped'}
# case -> (the case whose parameters it starts from, the parameters it changes)
OVERRIDES = {'cond_clamped': ('cond', ['glow.0.0.inj.net.2.b', 'glow.0.0.inj.net.2.scale', 'glow.3.prior.log_var.2.b'])}


def net_names(prefix, net):
    """(our name, torch tensor, transform to our layout) of a conditioner Sequential."""
    out = []
    for ours, idx in (('0', 0), ('1', 2)):
        out.append(('%s.%s.w' % (prefix, ours), net[idx].weight, lambda t: t))
        out.append(('%s.%s.b' % (prefix, ours), net[idx].bias, lambda t: t))
    z = net[4]
    out.append(('%s.2.w' % prefix, z.conv.weight, lambda t: t))
    out.append(('%s.2.b' % prefix, z.conv.bias, lambda t: t))
    out.append(('%s.2.scale' % prefix, z.scale, lambda t: t.reshape(-1)))
    return out


def our_tensors(model):
    """Every parameter and buffer as (our name, torch tensor, to-our-layout function, trainable)."""
    out = []
    for b, steps in enumerate(model.blocks):
        for k, st in enumerate(steps):
            n = 'glow.%d.%d' % (b, k)
            for field in ('lower', 'upper', 'log_s'):
                out.append(('%s.inv.%s' % (n, field), getattr(st.inv, field), lambda t: t, True))
            for field in ('perm', 'sign'):
                out.append(('%s.inv.%s' % (n, field), getattr(st.inv, field), lambda t: t, False))
            out += [(a, t, f, True) for a, t, f in net_names(n + '.inj.net', st.inj.net)]
            out += [(a, t, f, True) for a, t, f in net_names(n + '.cpl.net', st.cpl.net)]
        pr = model.priors[b]
        p = 'glow.%d.prior' % b
        if pr.conditional:
            for part in ('mean', 'log_var'):
                mlp = getattr(pr, part)
                for ours, idx in (('0', 0), ('1', 2), ('2', 4)):
                    out.append(('%s.%s.%s.w' % (p, part, ours), mlp[idx].weight, lambda t: t.t(), True))
                    out.append(('%s.%s.%s.b' % (p, part, ours), mlp[idx].bias, lambda t: t, True))
        else:
            out.append(('%s.mean' % p, pr.mean, lambda t: t.reshape(-1), True))
            out.append(('%s.log_var' % p, pr.log_var, lambda t: t.reshape(-1), True))
    n_params = sum(1 for _ in model.parameters())
    assert sum(1 for o in out if o[3]) == n_params, 'a parameter has no name'
    return out


def randomise(model, case, gen):
    """Every parameter and buffer off its start, at scales that keep log p around -100 per map."""
    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=gen) * std)

    with torch.no_grad():
        for steps in model.blocks:
            for st in steps:
                c = st.inv.log_s.numel()
                normal(st.inv.lower, 0.2)
                normal(st.inv.upper, 0.2)
                normal(st.inv.log_s, 0.1)
                st.inv.perm.copy_(torch.eye(c)[torch.randperm(c, generator=gen)])
                st.inv.sign.copy_(torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0))
                for net in (st.inj.net, st.cpl.net):
                    for idx in (0, 2):
                        normal(net[idx].weight, 0.4)
                        normal(net[idx].bias, 0.1)
                    normal(net[4].conv.weight, 0.05)
                    normal(net[4].conv.bias, 0.1)
                    normal(net[4].scale, 0.05)
        for pr in model.priors:
            if pr.conditional:
                for mlp in (pr.mean, pr.log_var):
                    for idx in (0, 2, 4):
                        fan_in = mlp[idx].weight.shape[1]
                        normal(mlp[idx].weight, 0.5 / fan_in ** 0.5)
                        normal(mlp[idx].bias, 0.1)
            else:
                normal(pr.mean, 0.2)
                normal(pr.log_var, 0.2)
        if case == 'cond_clamped':
            # Clamps active: the first step's injector log-scale of channel 0 far below log 1e-3 (its ZeroConv
            # output is (conv + bias) exp(3 scale), so the bias dominates), and the final prior's log-variance
            # of element 0 above 5.
            inj = model.blocks[0][0].inj.net[4]
            c = inj.conv.bias.numel() // 2
            inj.conv.bias[c] = -12.0
            inj.scale[0, c] = 0.0
            model.priors[-1].log_var[4].bias[0] = 8.0


def run_case(name, kw, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = higlow.CondGlow(**kw)
    randomise(model, name, gen)
    if name in OVERRIDES:
        # Same parameters as the base case except the overridden ones (randomise draws them in the same order).
        base, changed = OVERRIDES[name]
        ref = np.load(OUT / ('%s.npz' % base))
        for ours, t, f, _ in our_tensors(model):
            if ours not in changed:
                assert np.array_equal(f(t.detach()).numpy(), ref[ours]), ours
    side = kw['side']
    x = torch.rand(N, 1, side, side, generator=gen) * 2 - 1
    c = torch.rand(N, 2, generator=gen) * 2 - 1
    zs, _ = model.encode(x, c)
    lp = model.log_prob(x, c)
    lp.sum().backward()
    zfix = [torch.randn(z.shape, generator=gen) for z in zs]
    xrev = model.reverse(zfix, c)
    if name not in FORWARD_ONLY:
        # The fixed latents go back to themselves (the port inverts).
        with torch.no_grad():
            again, _ = model.encode(xrev, c)
        for a, b in zip(again, zfix):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (a - b).abs().max()

    out = {}
    base, changed = OVERRIDES.get(name, (None, None))
    last = 'glow.%d.prior.' % kw['blocks']
    for ours, t, f, train in our_tensors(model):
        if base is None or ours in changed:
            out[ours] = f(t.detach()).numpy()
        if train and (base is None or ours.startswith('glow.0.0.') or ours.startswith(last)):
            out['grad.' + ours] = f(t.grad).numpy()
    out['x'], out['c'] = x.numpy(), c.numpy()
    out['log_p'] = lp.detach().numpy()
    for b, (z, zf) in enumerate(zip(zs, zfix)):
        out['z.%d' % b] = z.detach().numpy()
        if name not in FORWARD_ONLY:
            out['zfix.%d' % b] = zf.numpy()
    if name not in FORWARD_ONLY:
        out['xrev'] = xrev.numpy()
    out = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
    np.savez(OUT / ('%s.npz' % name), **out)
    print('%s: log p %s, |xrev| max %.3g, %d parameters, %d arrays, %.1f kB'
          % (name, np.array2string(out['log_p'], precision=2), np.abs(xrev.numpy()).max(),
             higlow.trainable(model), len(out), (OUT / ('%s.npz' % name)).stat().st_size / 1024))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, kw in CASES.items():
        # A case with a base draws the same parameters as its base (same seed), then changes a few.
        run_case(name, kw, 100 + list(CASES).index(OVERRIDES.get(name, (name,))[0]))


if __name__ == '__main__':
    main()
