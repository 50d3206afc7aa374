#!/usr/bin/env bash
# Every CPU speed target of issue 14 in one run: each of our examples beside its PyTorch / zuko twin, at 1 and
# 2 threads, alternating so drift hits both sides. Each run is wrapped in /usr/bin/time for its peak resident
# memory (KB) and its voluntary / involuntary context switches, printed after the run's own figures.
# Usage: benches/torch/compare_cpu.sh [rounds] [busy]
#   busy = 1 runs one CPU-bound competitor process throughout (a shared HPC node's neighbour).
# Honours CARGO_TARGET_DIR. Needs torch, zuko and numpy (pip install torch zuko numpy).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-1}"; busy="${2:-0}"
cargo build --release -q --example nsf_speed --example flow_step_speed --example ae_speed --example glow_speed
ex="${CARGO_TARGET_DIR:-target}/release/examples"
if [ "$busy" = 1 ]; then
  python3 -c "while True: pass" & hog=$!
  trap 'kill $hog' EXIT
fi
timed() { /usr/bin/time -f "  [rss_kb=%M voluntary_cs=%w involuntary_cs=%c wall_s=%e]" "$@"; }
for r in $(seq "$rounds"); do
  for t in 1 2; do
    echo "== round $r, $t thread(s), busy=$busy"
    export RAYON_NUM_THREADS="$t"
    # GalacticFlow's NSF: 10 training steps (batch 1024, RAdam), 50,000 stars sampled.
    timed "$ex/nsf_speed" cpu 14 10 50000
    timed python3 benches/torch/nsf.py --threads "$t" --train-steps 10 --sample-stars 50000 --cond-once --json
    # MAF of zuko's architecture (10 transforms, (128, 128), 4 conditions): 50 Adam steps, 50,000 stars sampled.
    timed "$ex/flow_step_speed" cpu 50 1024 maf 50000
    timed python3 benches/torch/zuko_flows.py --threads "$t" --flow maf --optim adam --context 4 --train-steps 50 \
      --sample-stars 50000
    # The demo's 64-pixel autoencoder (batch 8, 50 steps) and the published 448 one (batch 4, 3 steps).
    timed "$ex/ae_speed" cpu 64 3,16,32,64,128 8 50
    timed python3 benches/torch/ae.py --threads "$t" --image 64 --channels 3,16,32,64,128 --batch 8 --steps 50 --json
    timed "$ex/ae_speed" cpu 448 3,64,128,256,512,1024,2048 4 3
    timed python3 benches/torch/ae.py --threads "$t" --image 448 --channels 3,64,128,256,512,1024,2048 --batch 4 \
      --steps 3 --json
    # HIGlow's published Glow: 5 training steps and 3 sampling batches of 64.
    timed "$ex/glow_speed" cpu 5 3
    timed python3 benches/torch/higlow.py --threads "$t" --steps 5 --sample-steps 3 --json
  done
done
