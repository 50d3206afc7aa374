#!/usr/bin/env bash
# Streaming `gforge flow sample` at scale: peak resident memory and stars/s for N stars (default 1e6 1e7),
# for GalacticFlow's NSF (14 layers, 128 hidden, untrained: sampling costs the same trained or not), or the
# flow that FLOW_ARGS describes (flags of `gforge flow train`, e.g. "--layers 4 --hidden 32").
# usage: benches/stream.sh [N ...]; env GFORGE (binary, default target/release/gforge), DEVICE (default cpu),
# WORK (scratch folder, default a temporary one; the sample file is removed after each run).
set -euo pipefail
cd "$(dirname "$0")/.."
G="${GFORGE:-target/release/gforge}"
DEV="${DEVICE:-cpu}"
W="${WORK:-$(mktemp -d)}"
[ $# -gt 0 ] || set -- 1000000 10000000
"$G" synth galaxies --out "$W/data" --galaxies 4 >/dev/null
"$G" flow train --data "$W/data" --out "$W/nsf.npz" --epochs 1 --max-steps 1 --device "$DEV" ${FLOW_ARGS:-} >/dev/null
echo "| stars | wall s | stars/s | peak RSS MiB | file GiB |"
echo "|---|---|---|---|---|"
for n in "$@"; do
  /usr/bin/time -f "%e %M" -o "$W/time" "$G" flow sample --model "$W/nsf.npz" --galaxy "$(ls "$W/data" | grep -m1 -o '^g[0-9]*')" \
    --stars "$n" --out "$W/s.npy" --device "$DEV" >/dev/null
  read -r wall rss < "$W/time"
  size=$(stat -c %s "$W/s.npy")
  rm -f "$W/s.npy"
  python3 -c "print(f'| {$n:.0e} | {$wall} | {$n/$wall:,.0f} | {$rss/1024:.0f} | {$size/2**30:.2f} |')"
done
