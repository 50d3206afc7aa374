#!/usr/bin/env bash
# HIGlow's conditional Glow (1 x 64 x 64 maps, 6 blocks, K = 20, width 16, conditional priors; 4,503,312
# parameters): training steps/s and maps/s (log p, loss -mean log p / (C H W), backward, clip 2, Adam 3e-4,
# batch 64; median step after 2 warm-ups) and sampling maps/s, galactic-forge (examples/glow_speed.rs) against
# the same model in PyTorch (benches/torch/higlow.py), same machine, same run, alternating so drift hits both.
# Usage: benches/torch/compare_glow.sh [device] [steps] [sample_steps] [threads] [rounds]
# (defaults: cpu 5 3 $(nproc) 2). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
dev="${1:-cpu}"; steps="${2:-5}"; ssteps="${3:-3}"; threads="${4:-$(nproc)}"; rounds="${5:-2}"
tdev=cpu; [[ "$dev" == cuda* ]] && tdev=cuda
cargo build --release --example glow_speed -q
bin="${CARGO_TARGET_DIR:-target}/release/examples/glow_speed"
for i in $(seq "$rounds"); do
  RAYON_NUM_THREADS="$threads" "$bin" "$dev" "$steps" "$ssteps"
  python3 benches/torch/higlow.py --threads "$threads" --device "$tdev" --steps "$steps" --sample-steps "$ssteps" \
    --json 2>/dev/null
done
