#!/usr/bin/env bash
# GalacticForge's image autoencoder (final_AE.py): training images/s, galactic-forge (examples/ae_speed.rs)
# against the same model in PyTorch (benches/torch/ae.py), same machine, same run, alternating.
# Usage: benches/torch/compare_ae.sh [device] [image] [channels] [batch] [steps] [threads]
# (defaults: cpu 448 3,64,128,256,512,1024,2048 4 3 $(nproc): the published model).
set -euo pipefail
cd "$(dirname "$0")/../.."
dev="${1:-cpu}"; image="${2:-448}"; ch="${3:-3,64,128,256,512,1024,2048}"; batch="${4:-4}"; steps="${5:-3}"
threads="${6:-$(nproc)}"
tdev=cpu; [[ "$dev" == cuda* ]] && tdev=cuda
cargo build --release --example ae_speed -q
for i in 1 2; do
  RAYON_NUM_THREADS="$threads" ./target/release/examples/ae_speed "$dev" "$image" "$ch" "$batch" "$steps"
  python3 benches/torch/ae.py --threads "$threads" --device "$tdev" --image "$image" --channels "$ch" \
    --batch "$batch" --steps "$steps" --json
done
