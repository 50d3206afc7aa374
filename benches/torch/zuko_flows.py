"""zuko's MAF and NSF on 10 star features with C context features: the PyTorch side of the
"Flows compared (zuko)" rows of BENCHMARKS.md (shared/REFERENCE.md section 2).

Flows (zuko defaults otherwise; `--transforms`, `--hidden` change them):
  maf    zuko.flows.MAF(10, C, transforms=10, hidden_features=(128, 128)): affine autoregressive,
         alternating orders.
  nsf    zuko.flows.NSF(10, C, bins=10, transforms=10, hidden_features=(128, 128)): autoregressive
         rational-quadratic splines (zuko's: bound 5, slope 1e-3), alternating orders.
  gfnsf  (fit mode only) GalacticFlow's coupling NSF from nsf.py in this folder, 14 layers, K = 10, so the
         PyTorch NSF can be fitted on the same data under the same budget.

Mode 1, speed (default): per flow, training stars/s (forward + backward + optimizer step, batch 1024,
random N(0, 1) stars and conditions from a pool of 8 pre-drawn batches, after `--warmup` untimed steps;
stars/s = batch * steps / time) and sampling stars/s (under torch.no_grad, one condition repeated for every
star, z drawn inside the timed region, chunks of <= 300000). zuko's autoregressive inverse runs one network
pass per feature and transform, so sampling is much slower than density evaluation.
  python3 benches/torch/zuko_flows.py --threads 2 --context 20 --train-steps 50 --sample-stars 300000 --json

Mode 2, fit (`--fit`): train on given data for a fixed budget and report the held-out mean log-prob.
Data format (plain .npy, float32, C order; loaded fully into memory):
  DATA.npy      [N, 10]  training stars, already standardized (z-scored per column with the TRAINING
                         table's mean/std: x, y, z, vx, vy, vz, Z, [Fe/H], [O/Fe], age)
  COND.npy      [N, C]   that star's galaxy conditions (the galaxy's row repeated for each of its stars),
                         standardized the same way
  VAL.npy       [M, 10]  held-out stars (whole left-out galaxies), standardized with the TRAINING statistics
  VAL_COND.npy  [M, C]   their conditions
Budget: `--steps S` or `--epochs E` (S = ceil(E * N / batch)), optionally capped by `--max-seconds`.
Batches are drawn without replacement from a fresh permutation each epoch. The score is the mean over
held-out stars of log p(x | c) in nats per star, in the standardized coordinates (higher is better; it is
comparable between flows only on the same standardized files).
  python3 benches/torch/zuko_flows.py --fit train.npy --cond train_cond.npy \
      --val val.npy --val-cond val_cond.npy --flow nsf --epochs 1 --out fit_nsf.json
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import zuko

CHUNK = 300_000
FEATURES = 10


def build(name, context, args):
    hidden = tuple(args.hidden)
    if name == "maf":
        return zuko.flows.MAF(FEATURES, context, transforms=args.transforms, hidden_features=hidden)
    if name == "nsf":
        return zuko.flows.NSF(FEATURES, context, bins=args.bins, transforms=args.transforms,
                              hidden_features=hidden)
    if name == "gfnsf":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import nsf
        return nsf.NSFlow(FEATURES, context, layers=args.gf_layers, bins=args.bins)
    raise ValueError(name)


def log_prob(model, x, c):
    if isinstance(model, zuko.flows.Flow):
        return model(c if c.shape[-1] > 0 else None).log_prob(x)
    return model.log_prob(x, c)


def sample(model, n, c_row):
    out = []
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        if isinstance(model, zuko.flows.Flow):
            out.append(model(c_row if c_row.numel() > 0 else None).sample((m,)))
        else:
            out.append(model.sample(m, c_row, chunk=CHUNK))
    return torch.cat(out)


def make_opt(model, args):
    cls = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}[args.optim]
    return cls(model.parameters(), lr=args.lr)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def sync(dev):
    """Waits for queued GPU work, so that a timer read afterwards covers it."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench(name, args):
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    model = build(name, args.context, args).to(dev)
    res = {"bench": f"zuko_{name}", "impl": f"pytorch {torch.__version__} zuko {zuko.__version__}",
           "device": args.device, "threads": torch.get_num_threads(), "features": FEATURES, "context": args.context,
           "transforms": args.transforms, "hidden": list(args.hidden), "params": n_params(model)}
    if name == "nsf":
        res["bins"] = args.bins
    if args.train_steps > 0:
        opt = make_opt(model, args)
        pool = [(torch.randn(args.batch, FEATURES, device=dev), torch.randn(args.batch, args.context, device=dev))
                for _ in range(8)]

        def step(i):
            x, c = pool[i % len(pool)]
            loss = -log_prob(model, x, c).mean()
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
        res.update(optim=args.optim, batch=args.batch, train_steps=args.train_steps, train_s=dt,
                   train_stars_per_s=args.batch * args.train_steps / dt, final_loss=loss.item())
    if args.sample_stars > 0:
        c_row = torch.randn(args.context, device=dev)
        with torch.no_grad():
            sample(model, min(1024, args.sample_stars), c_row)  # warm-up
            sync(dev)
            t = time.perf_counter()
            x = sample(model, args.sample_stars, c_row)
            sync(dev)
            dt = time.perf_counter() - t
        res.update(sample_stars=args.sample_stars, sample_s=dt, sample_stars_per_s=args.sample_stars / dt,
                   sample_chunk=CHUNK, sample_finite=bool(torch.isfinite(x).all()))
    return res


def load(path, cols=None):
    a = np.load(path)
    if a.ndim != 2 or (cols is not None and a.shape[1] != cols):
        sys.exit(f"{path}: expected a 2-D array{'' if cols is None else f' with {cols} columns'}, got {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def mean_log_prob(model, x, c, chunk=65536):
    total = 0.0
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            total += log_prob(model, x[s:s + chunk], c[s:s + chunk]).double().sum().item()
    return total / x.shape[0]


def fit(args):
    x, c = load(args.fit, FEATURES), load(args.cond)
    xv, cv = load(args.val, FEATURES), load(args.val_cond, c.shape[1])
    if c.shape[0] != x.shape[0] or cv.shape[0] != xv.shape[0]:
        sys.exit("stars and conditions must have the same number of rows")
    n, ctx = x.shape[0], c.shape[1]
    steps = args.steps if args.steps else math.ceil(args.epochs * n / args.batch)
    name = args.flow[0]
    torch.manual_seed(args.seed)
    model = build(name, ctx, args)
    opt = make_opt(model, args)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=args.gamma)
    curve = []
    perm, pos, step, eval_s, t0 = torch.randperm(n), 0, 0, 0.0, time.perf_counter()
    loss = float("nan")
    while step < steps:
        if pos + args.batch > n:  # new epoch (drop the ragged tail)
            perm, pos = torch.randperm(n), 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        loss = -log_prob(model, x[idx], c[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if args.gamma != 1.0 and step % args.gamma_every == 0:
            sched.step()
        loss = loss.item()
        if args.eval_every and step % args.eval_every == 0:  # evaluation time is not training time
            te = time.perf_counter()
            curve.append({"step": step, "train_s": te - t0 - eval_s, "train_loss": loss,
                          "val_log_prob": mean_log_prob(model, xv, cv)})
            eval_s += time.perf_counter() - te
            print(json.dumps(curve[-1]), file=sys.stderr)
        if args.max_seconds and time.perf_counter() - t0 - eval_s > args.max_seconds:
            break
    train_s = time.perf_counter() - t0 - eval_s
    res = {"mode": "fit", "flow": name, "impl": f"pytorch {torch.__version__} zuko {zuko.__version__}",
           "threads": torch.get_num_threads(), "params": n_params(model), "context": ctx,
           "train_stars": n, "val_stars": xv.shape[0], "batch": args.batch, "steps": step,
           "epochs": step * args.batch / n, "optim": args.optim, "lr": args.lr, "gamma": args.gamma,
           "gamma_every": args.gamma_every, "seed": args.seed, "train_s": train_s, "final_train_loss": loss,
           "val_mean_log_prob": mean_log_prob(model, xv, cv), "curve": curve}
    if name != "gfnsf":
        res.update(transforms=args.transforms, hidden=list(args.hidden))
    if name in ("nsf", "gfnsf"):
        res["bins"] = args.bins
    if name == "gfnsf":
        res["layers"] = args.gf_layers
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flow", nargs="+", default=["maf", "nsf"], choices=["maf", "nsf", "gfnsf"],
                    help="flows to run (fit mode: the first only)")
    ap.add_argument("--context", type=int, default=20, help="context features (speed mode)")
    ap.add_argument("--transforms", type=int, default=10)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--gf-layers", type=int, default=14, help="layers of gfnsf")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--optim", choices=["radam", "adam"], default="radam")
    ap.add_argument("--lr", type=float, default=9e-5, help="GalacticFlow's; use the same in every compared run")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    # speed mode
    ap.add_argument("--train-steps", type=int, default=50, help="timed steps (0: skip)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sample-stars", type=int, default=300_000, help="0: skip")
    ap.add_argument("--json", action="store_true", help="print one JSON line per flow")
    ap.add_argument("--device", default="cpu", help="torch device of speed mode (cpu, cuda, cuda:N)")
    # fit mode
    ap.add_argument("--fit", metavar="DATA.npy")
    ap.add_argument("--cond", metavar="COND.npy")
    ap.add_argument("--val", metavar="VAL.npy")
    ap.add_argument("--val-cond", metavar="VAL_COND.npy")
    ap.add_argument("--steps", type=int, default=0, help="training steps (overrides --epochs)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=0, help="stop early after this much training time")
    ap.add_argument("--gamma", type=float, default=1.0, help="ExponentialLR factor (1: constant lr)")
    ap.add_argument("--gamma-every", type=int, default=10, help="batches between lr decays")
    ap.add_argument("--eval-every", type=int, default=0, help="steps between held-out evaluations (stderr)")
    ap.add_argument("--out", metavar="RESULT.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fit:
        if not (args.cond and args.val and args.val_cond):
            ap.error("--fit needs --cond, --val and --val-cond")
        fit(args)
        return
    if "gfnsf" in args.flow:
        ap.error("gfnsf is for --fit; benchmark it with nsf.py")
    for name in args.flow:
        res = bench(name, args)
        if args.json:
            print(json.dumps(res))
        else:
            line = f"{res['impl']} {args.device} ({res['threads']} threads) {name} ({res['params']} parameters, " \
                   f"context {args.context}):"
            if "train_s" in res:
                line += f" train {res['train_stars_per_s']:.0f} stars/s ({args.optim}, batch {args.batch})"
            if "sample_s" in res:
                line += f", sample {res['sample_stars_per_s']:.0f} stars/s"
            print(line)


if __name__ == "__main__":
    main()
