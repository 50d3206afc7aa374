#!/usr/bin/env bash
# GalacticFlow's NSF (14 layers of [LU, double spline coupling], nets 4 x 128, K = 10, 4 conditions,
# batch 1024): training and sampling stars/s, galactic-forge against the same model in PyTorch
# (benches/torch/nsf.py), same machine, same run, alternating so that drift hits both.
# Usage: benches/torch/compare_nsf.sh [device] [train_steps] [sample_stars] [threads]
set -euo pipefail
cd "$(dirname "$0")/../.."
dev="${1:-cpu}"; steps="${2:-20}"; stars="${3:-100000}"; threads="${4:-$(nproc)}"
cargo build --release --example nsf_speed -q
for i in 1 2; do
  RAYON_NUM_THREADS="$threads" ./target/release/examples/nsf_speed "$dev" 14 "$steps" "$stars"
  python3 benches/torch/nsf.py --threads "$threads" --train-steps "$steps" --sample-stars "$stars" --cond-once --json 2>/dev/null
done
