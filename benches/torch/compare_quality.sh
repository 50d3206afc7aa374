#!/usr/bin/env bash
# Flow quality under one training budget on the demo's synthetic galaxies: the held-out exact KL(p || q)
# (nats/star, weighted by star count) of our NSF, MAF and NICE and of zuko's MAF and NSF, all trained on
# the same cleaned, standardised stars (gforge flow prepare) with the same optimiser, schedule and epochs.
# Usage: benches/torch/compare_quality.sh [out_dir] [epochs]. Needs torch, zuko, numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-quality}"; epochs="${2:-8}"
cargo build --release -q
g=./target/release/gforge
$g synth galaxies --out "$out/data"
$g flow prepare --data "$out/data" --out "$out/prepared"
sched=(--optimizer adam --lr 2e-3 --gamma 0.99 --gamma-every 5)
train() { # name, model args...
  local name=$1; shift
  /usr/bin/time -f "$name: %e s" $g flow train --data "$out/data" --device cpu --epochs "$epochs" "${sched[@]}" \
    --out "$out/$name.npz" "$@" > "$out/$name.log"
  $g flow eval --model "$out/$name.npz" --data "$out/data" --out "$out/eval_$name" --device cpu > "$out/eval_$name.log"
}
train nsf --model nsf --layers 6 --hidden 64 --depth 3
train maf --model maf --layers 10 --hidden 128 --depth 3
train nice --model nice --layers 30 --hidden 128 --depth 3
train sospf --model sospf --layers 10 --hidden 128 --depth 3
for f in maf nsf; do
  /usr/bin/time -f "zuko-$f: %e s" python3 benches/torch/zuko_flows.py --threads 2 --flow "$f" \
    --fit "$out/prepared/train_x.npy" --cond "$out/prepared/train_c.npy" \
    --val "$out/prepared/val_x.npy" --val-cond "$out/prepared/val_c.npy" \
    --epochs "$epochs" --optim adam --lr 2e-3 --gamma 0.99 --gamma-every 5 --out "$out/zuko_$f.json" > /dev/null
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
prep = json.load(open(f"{out}/prepared/prepared.json"))
ref = json.load(open(f"{out}/eval_nsf/metrics.json"))["galaxies"]
n = sum(g["stars"] for g in ref)
true_nll = sum(g["true_nll"] * g["stars"] for g in ref) / n  # -E[log p_c], physical units
print(f"held-out galaxies: {len(ref)}, {n} stars; entropy of the data under the true density: {true_nll:.4f} nats/star")
print(f"{'flow':<10} {'NLL (phys.)':>12} {'exact KL':>10}")
for name in ["nsf", "maf", "nice", "sospf"]:
    gs = json.load(open(f"{out}/eval_{name}/metrics.json"))["galaxies"]
    nll = sum(g["nll"] * g["stars"] for g in gs) / n
    print(f"{name:<10} {nll:>12.4f} {nll - true_nll:>10.4f}")
for f in ["maf", "nsf"]:
    r = json.load(open(f"{out}/zuko_{f}.json"))
    lp = r.get("val_mean_log_prob", r.get("val_log_prob"))
    nll = -(lp + prep["log_jacobian"])
    print(f"zuko-{f:<5} {nll:>12.4f} {nll - true_nll:>10.4f}")
PY
