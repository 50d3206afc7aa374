#!/usr/bin/env bash
# CPU matmul at 1024^3: galactic-forge against PyTorch on the same machine, in the same run, alternating
# three times so that drift on a shared machine hits both. Needs `pip install torch`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --example matmul_gflops -q
for i in 1 2 3; do
  ./target/release/examples/matmul_gflops cpu "${1:-1024}" 20
  python3 benches/torch/matmul.py "${1:-1024}" 20 2>/dev/null
done
