#!/usr/bin/env bash
# The GPU check (issue 10), run ON a lent GPU machine: no Rust, no network, CUDA driver, PyTorch and the
# NVIDIA Vulkan driver. Runs from the repo root what tools/gpu-stage.sh staged into .gpu/ (and .gl/, .whl/):
#   1. gforge devices (all WGPU backends, then Vulkan only);
#   2. gforge selftest --device cuda, and on the NVIDIA Vulkan adapter (WGPU_BACKEND=vulkan, wgpu:N);
#   3. speed examples on CUDA: nsf_speed (NSF train/sample stars/s), ae_speed (AE images/s), matmul_gflops
#      (1024^3, 4096^3), glow_speed (if examples/glow_speed.rs exists in the staged checkout);
#   4. every test binary of `cargo test --no-run` with GFORGE_STRICT=1 (their compile-time paths recreated;
#      one that fails is run again with WGPU_BACKEND=vulkan, to tell a GL failure from a Vulkan one);
#   5. benches/torch on the same GPU: nsf.py, ae.py, matmul.py, conv.py, zuko_flows.py (needs zuko: the
#      staged .whl/zuko-*.whl, else skipped with a note), higlow.py (if present);
#   6. the speed examples again on the Vulkan adapter.
# Every step has its own timeout, every group a cap, the whole run a budget (GPU_CHECK_BUDGET, 450 s), so a
# hang costs one step and starves, at worst, the groups after it (ordered by priority); a failure never stops
# the run. Expected there: 4 to 6 minutes (a rehearsal at tiny sizes took 75 s on 2 CPU cores). All output goes to $OUT/gpu-report.txt, the headline
# figures and each step's status to $OUT/gpu-report.json. Exit status 1 if any step failed or timed out.
#
# THE DEVICE CALL (run tool), after `tools/gpu-stage.sh` here, in the checkout that `run` sends:
#   command:   bash tools/gpu-check.sh
#   carry:     [".gpu", ".gl", ".whl"]      (".whl" only if gpu-stage.sh fetched zuko)
#   timeout_s: 540
# On the warm machine (30 s after a call) a part can be rerun at once, e.g. `bash tools/gpu-check.sh
# selftest tests`; groups: devices selftest cuda tests torch vulkan (devices always runs: the others need it).
#
# Rehearsal on a machine without a GPU (lavapipe for Vulkan; CUDA steps report the missing driver and are
# skipped; the CUDA and torch steps run on the CPU instead at tiny sizes, to exercise their command lines):
#   OUT=/tmp/gpu-out GPU_CHECK_SCALE=small GPU_CHECK_SLOW=5 tools/gpu-check.sh     (about 80 s on 2 cores)
# Knobs: GPU_CHECK_SCALE=full|small, GPU_CHECK_BUDGET (s), GPU_CHECK_SLOW (timeouts and caps x N),
# GPU_CHECK_WORK (scratch, /tmp/gpu-check), GPU_CHECK_EXPECT_GPU=0|1 (default: 1 when nvidia-smi or
# /dev/nvidiactl exists; then a missing CUDA device or a software-only Vulkan adapter is a failure).
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd -P)"
OUT="${OUT:-$ROOT/out/gpu-check}"
mkdir -p "$OUT"
REPORT="$OUT/gpu-report.txt"
JSON="$OUT/gpu-report.json"
WORK="${GPU_CHECK_WORK:-/tmp/gpu-check}"
SCALE="${GPU_CHECK_SCALE:-full}"
BUDGET="${GPU_CHECK_BUDGET:-450}"
SLOW="${GPU_CHECK_SLOW:-1}"  # multiplies every step timeout and group cap (a rehearsal on 2 CPU cores: 5)
T0=$(date +%s)
X="$WORK/x"                  # the unpacked binaries: $X/bin, $X/examples, $X/tests
RESULTS="$WORK/results.tsv"  # group, name, status, rc, seconds, note (one row per step)
GROUPS_WANTED=" ${*:-devices selftest cuda tests torch vulkan} devices "

now() { date +%s; }
left() { echo $((BUDGET - ($(now) - T0))); }
want() { [[ "$GROUPS_WANTED" == *" $1 "* ]]; }
clean() { tr '\t\n' '  ' | cut -c1-300; }

record() { # group name status rc seconds note
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$(printf '%s' "$6" | clean)" >>"$RESULTS"
  printf '%-8s %-34s %s %s\n' "[$3]" "$2" "${5}s" "$6"
}

skip() { # group name reason
  echo
  echo "=== [$1] $2: SKIP: $3"
  record "$1" "$2" SKIP - 0 "$3"
}

GROUP="" GROUP_END=0
group() { # name cap_seconds
  GROUP="$1"
  GROUP_END=$(($(now) + $2 * SLOW))
  echo
  echo "######## $1 (cap $(($2 * SLOW))s, $(left)s of the ${BUDGET}s budget left)"
}

# A step's note when it fails: selftest's or the test harness's summary, the failing ops or tests, the
# first panic message; else the last line that looks like an error.
why() {
  local log="$1" a b c d
  a="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)"
  b="$(grep -E '^.{22} +FAIL ' "$log" | cut -c1-22 | sed 's/ *$//' | head -8 | paste -sd, -)"
  c="$(grep -E '^test result:' "$log" | tail -1 | sed 's/; 0 ignored.*//; s/^test result: //')"
  [ -n "$c" ] && c="$c: $(sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [^ ]+$' | tr -d ' ' | sort -u | head -8 | paste -sd, -)"
  d="$(grep -A1 -m1 ' panicked at ' "$log" | tail -1)"
  if [ -z "$a$b$c$d" ]; then
    d="$(grep -vE '^\s*$|XDG_RUNTIME_DIR' "$log" | grep -iE 'error|panicked|fail|not found|no such' | tail -1)"
  fi
  printf '%s' "${a:+$a; }${b:+failed: $b; }${c:+$c; }$d" | tr '\n' ' ' | cut -c1-300
}

# run_step NAME TIMEOUT CMD...: runs CMD under timeout (clipped to the group cap and the budget), tees its
# output to the report and to $WORK/logs/NAME.log, records PASS / FAIL / TIMEOUT. Returns CMD's status.
run_step() {
  local name="$1" tmo=$(($2 * SLOW))
  shift 2
  local cap=$((GROUP_END - $(now))) l
  l=$(left)
  [ "$l" -lt "$cap" ] && cap=$l
  cap=$((cap - 5))
  if [ "$cap" -lt 5 ]; then
    skip "$GROUP" "$name" "no time left (group cap or total budget)"
    return 99
  fi
  [ "$tmo" -gt "$cap" ] && tmo=$cap
  local log="$WORK/logs/${name//[^A-Za-z0-9_.@:-]/_}.log"
  echo
  echo "=== [$GROUP] $name (timeout ${tmo}s): $*"
  local t
  t=$(date +%s.%N)
  timeout -k 5 "$tmo" "$@" </dev/null 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local secs
  secs=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" = 0 ]; then
    record "$GROUP" "$name" PASS 0 "$secs" ""
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    record "$GROUP" "$name" TIMEOUT "$rc" "$secs" "killed after ${tmo}s; $(why "$log")"
  else
    record "$GROUP" "$name" FAIL "$rc" "$secs" "$(why "$log")"
  fi
  return "$rc"
}

# ------------------------------------------------------------------------------------------------------------
setup() {
  echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) cores, scale $SCALE, budget ${BUDGET}s"
  echo "repo root: $ROOT; groups:$GROUPS_WANTED"
  rm -rf "$WORK"
  mkdir -p "$WORK/logs" "$X"
  : >"$RESULTS"
  EXPECT_GPU="${GPU_CHECK_EXPECT_GPU:-}"
  if [ -z "$EXPECT_GPU" ]; then
    EXPECT_GPU=0
    { command -v nvidia-smi >/dev/null || [ -e /dev/nvidiactl ]; } && EXPECT_GPU=1
  fi
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -5
  else
    echo "no nvidia-smi on this machine"
  fi
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
    "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1

  if [ ! -f .gpu/bin.tar.xz ] || [ ! -f .gpu/paths.env ]; then
    echo "FATAL: no .gpu/bin.tar.xz or .gpu/paths.env: run tools/gpu-stage.sh where Rust is, carry .gpu"
    record setup unpack FAIL 1 0 "nothing staged: run tools/gpu-stage.sh and carry .gpu"
    return 1
  fi
  # shellcheck disable=SC1091
  . .gpu/paths.env
  echo "staged: commit ${GPU_COMMIT:-?} (${GPU_DIRTY:-?} changed tracked files) at ${GPU_STAGED:-?}"
  if ! tar -xJf .gpu/bin.tar.xz -C "$X" 2>"$WORK/logs/untar.err"; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .gpu/bin.tar.xz "$X" ||
      { record setup unpack FAIL 1 0 "could not unpack .gpu/bin.tar.xz: $(cat "$WORK/logs/untar.err")"; return 1; }
  fi
  echo "unpacked $(find "$X" -type f | wc -l) binaries ($(du -sm "$X" | cut -f1) MiB)"

  # Vulkan and EGL loaders (the device README): only where the machine lacks them, as unpacking into / can
  # replace a working system library.
  if ldconfig -p | grep -q 'libvulkan.so.1' && ldconfig -p | grep -q 'libEGL.so.1'; then
    echo "libvulkan.so.1 and libEGL.so.1 present: .gl not unpacked"
  elif ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "unpacked $(ls .gl/*.deb | wc -l) loader packages from .gl into /"
  else
    echo "WARNING: no libvulkan.so.1 and no .gl/*.deb: the Vulkan steps will find no adapter"
  fi

  # The test binaries' compile-time paths (env!()): CARGO_BIN_EXE_gforge must be the debug gforge, and
  # CARGO_MANIFEST_DIR must hold tests/fixtures. Recreate them as links where they do not exist.
  local note=""
  if [ -n "${GPU_BIN_EXE:-}" ]; then
    if [ -e "$GPU_BIN_EXE" ]; then
      note="$GPU_BIN_EXE exists (used as is)"
    else
      if mkdir -p "$(dirname "$GPU_BIN_EXE")" && ln -s "$X/bin/gforge-debug" "$GPU_BIN_EXE"; then
        note="linked $GPU_BIN_EXE -> staged gforge-debug"
      else
        note="WARNING could not create $GPU_BIN_EXE: the CLI tests will fail"
      fi
    fi
  fi
  if [ -n "${GPU_MANIFEST_DIR:-}" ]; then
    if [ "$GPU_MANIFEST_DIR" -ef "$ROOT" ]; then
      note="$note; $GPU_MANIFEST_DIR is this repo"
    elif [ -e "$GPU_MANIFEST_DIR" ]; then
      note="$note; WARNING $GPU_MANIFEST_DIR exists and is not this repo (tests read fixtures there)"
    else
      if mkdir -p "$(dirname "$GPU_MANIFEST_DIR")" && ln -s "$ROOT" "$GPU_MANIFEST_DIR"; then
        note="$note; linked $GPU_MANIFEST_DIR -> $ROOT"
      else
        note="$note; WARNING could not create $GPU_MANIFEST_DIR: tests/golden will miss its fixtures"
      fi
    fi
  fi
  echo "compile-time paths: $note"

  # zuko for zuko_flows.py, from the staged wheel if the machine lacks it
  ZUKO=0
  if python3 -c 'import zuko' 2>/dev/null; then
    ZUKO=1
  elif ls .whl/zuko-*.whl >/dev/null 2>&1; then
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .whl/zuko-*.whl &&
      export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" && python3 -c 'import zuko' && ZUKO=1
  fi
  echo "zuko: $([ $ZUKO = 1 ] && python3 -c 'import zuko; print(zuko.__version__)' || echo missing)"
  record setup unpack PASS 0 "$(($(now) - T0))" "$note"
}

# ------------------------------------------------------------------------------------------------------------
G=""          # the release gforge
CUDA=0        # a CUDA device is listed
CUDA_WHY=""   # why not
VK=""         # the Vulkan adapter's spec (wgpu:N under WGPU_BACKEND=vulkan)
VK_NAME=""
VK_HW=0

devices() {
  G="$X/bin/gforge"
  group devices 60
  run_step devices 30 "$G" devices
  if grep -qE '^cuda:[0-9]' "$WORK/logs/devices.log"; then
    CUDA=1
  else
    CUDA_WHY="$(grep -E '^\(cuda:' "$WORK/logs/devices.log" | head -1 | tr -d '()')"
    CUDA_WHY="${CUDA_WHY:-no cuda device listed}"
  fi
  vk_probe() {
    run_step "$1" 30 env WGPU_BACKEND=vulkan "$G" devices
    local hw any
    hw="$(grep -E '^wgpu:[0-9]+ ' "$WORK/logs/$1.log" | grep -v ' Cpu ' | head -1)"
    any="$(grep -E '^wgpu:[0-9]+ ' "$WORK/logs/$1.log" | head -1)"
    if [ -n "$hw" ]; then VK_HW=1; VK="${hw%% *}"; VK_NAME="$hw"; elif [ -n "$any" ]; then VK="${any%% *}"; VK_NAME="$any"; fi
  }
  vk_probe devices-vulkan
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ "$VK_HW" = 0 ] && [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    echo "no hardware Vulkan adapter: pointing the loader at $icd (device README)"
    export VK_DRIVER_FILES="$icd"
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    run_step devices-icd 30 "$G" devices
    vk_probe devices-vulkan-icd
  fi
  echo
  echo "CUDA: $([ $CUDA = 1 ] && echo yes || echo "no ($CUDA_WHY)"); Vulkan adapter: ${VK:-none} ${VK_NAME:+($(echo "$VK_NAME" | tr -s ' ' | cut -d' ' -f2-))}"
}

# ------------------------------------------------------------------------------------------------------------
selftest() {
  group selftest 200
  if [ "$CUDA" = 1 ] || [ "$EXPECT_GPU" = 1 ]; then
    run_step selftest@cuda 150 "$G" selftest --device cuda
  else
    # No NVIDIA GPU here: not a failure, but gforge must say so in one line, not panic (exit 101) or hang.
    local log="$WORK/logs/selftest@cuda-probe.log" rc
    echo
    echo "=== [selftest] selftest@cuda without an NVIDIA GPU (a one-line error is expected)"
    timeout -k 5 20 "$G" selftest --device cuda </dev/null 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 1 ] && grep -q '^gforge: ' "$log"; then
      skip selftest selftest@cuda "no NVIDIA GPU on this machine (gforge exit 1: $(grep '^gforge: ' "$log" | head -1))"
    else
      record selftest selftest@cuda FAIL "$rc" 0 "no NVIDIA GPU, and gforge did not fail cleanly (exit $rc)"
    fi
  fi
  if [ -z "$VK" ]; then
    record selftest selftest@vulkan FAIL - 0 "no Vulkan adapter (see devices-vulkan)"
  else
    [ "$VK_HW" = 1 ] || echo "note: $VK is a software adapter"
    [ "$VK_HW" = 1 ] || [ "$EXPECT_GPU" = 0 ] ||
      record selftest vulkan-hardware FAIL - 0 "only a software Vulkan adapter on a GPU machine: $VK_NAME"
    run_step "selftest@vulkan-$VK" 150 env WGPU_BACKEND=vulkan "$G" selftest --device "$VK"
  fi
}

# ------------------------------------------------------------------------------------------------------------
# Sizes: full = the published models and BENCHMARKS.md's settings; small = a few seconds each on a CPU.
if [ "$SCALE" = small ]; then
  NSF_ARGS=(2 3 3000)                  # layers, train steps, sample stars
  AE_ARGS=(32 3,8,16 2 2)              # image, channels, batch, steps
  MM_SIZES=(128 256)
  MM_REPS=5
  GLOW_ARGS=(1 1 4 2 2)                # steps, sample steps, batch, blocks, flows
  TORCH_NSF=(--layers 2 --train-steps 3 --sample-stars 3000)
  TORCH_ZUKO=(--transforms 2 --train-steps 3 --sample-stars 2000)
  TORCH_GLOW=(--steps 1 --sample-steps 1 --batch 4 --blocks 2 --flows 2)
  CONV_ARGS=(1 1)
  EX_TMO=120
else
  NSF_ARGS=(14 50 300000)
  AE_ARGS=(448 3,64,128,256,512,1024,2048 4 10)
  MM_SIZES=(1024 4096)
  MM_REPS=20
  GLOW_ARGS=(5 3 64)
  TORCH_NSF=(--train-steps 50 --sample-stars 300000)
  TORCH_ZUKO=(--context 20 --train-steps 50 --sample-stars 300000)
  TORCH_GLOW=(--steps 5 --sample-steps 3)
  CONV_ARGS=(4 5)
  EX_TMO=90
fi

speed_examples() { # device label
  local dev="$1" tag="$2" e
  for e in nsf_speed ae_speed matmul_gflops glow_speed; do
    if [ ! -x "$X/examples/$e" ]; then
      skip "$GROUP" "gforge.${e%_*}@$tag" "examples/$e.rs not in the staged checkout"
      continue
    fi
    case $e in
      nsf_speed) run_step "gforge.nsf@$tag" "$EX_TMO" "$X/examples/nsf_speed" "$dev" "${NSF_ARGS[@]}" ;;
      ae_speed) run_step "gforge.ae@$tag" "$EX_TMO" "$X/examples/ae_speed" "$dev" "${AE_ARGS[@]}" ;;
      matmul_gflops)
        for n in "${MM_SIZES[@]}"; do
          run_step "gforge.matmul$n@$tag" 45 "$X/examples/matmul_gflops" "$dev" "$n" "$MM_REPS"
        done ;;
      glow_speed) run_step "gforge.glow@$tag" "$EX_TMO" "$X/examples/glow_speed" "$dev" "${GLOW_ARGS[@]}" ;;
    esac
  done
}

cuda_examples() {
  group cuda 150
  if [ "$CUDA" = 1 ] || [ "$EXPECT_GPU" = 1 ]; then
    speed_examples cuda cuda
  elif [ "$SCALE" = small ]; then
    echo "no CUDA driver ($CUDA_WHY): rehearsing these steps on the CPU instead"
    speed_examples cpu cpu
  else
    skip cuda "gforge.*@cuda" "no CUDA driver: $CUDA_WHY"
  fi
}

torch_benches() {
  group torch 150
  local tdev=cuda
  if ! python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    if [ "$SCALE" = small ]; then
      echo "torch sees no CUDA: rehearsing these steps on the CPU instead"
      tdev=cpu
    else
      skip torch "torch.*@cuda" "torch sees no CUDA device"
      return
    fi
  fi
  local py=(env PYTHONUNBUFFERED=1 python3)
  run_step "torch.nsf@$tdev" 90 "${py[@]}" benches/torch/nsf.py --device "$tdev" "${TORCH_NSF[@]}" --cond-once --json
  run_step "torch.ae@$tdev" 90 "${py[@]}" benches/torch/ae.py --device "$tdev" --image "${AE_ARGS[0]}" \
    --channels "${AE_ARGS[1]}" --batch "${AE_ARGS[2]}" --steps "${AE_ARGS[3]}" --json
  for n in "${MM_SIZES[@]}"; do
    run_step "torch.matmul$n@$tdev" 45 "${py[@]}" benches/torch/matmul.py "$n" "$MM_REPS" "$tdev"
  done
  run_step "torch.conv@$tdev" 60 "${py[@]}" benches/torch/conv.py "${CONV_ARGS[@]}" "$(nproc)" "$tdev"
  if [ "$ZUKO" = 1 ]; then
    run_step "torch.zuko@$tdev" 120 "${py[@]}" benches/torch/zuko_flows.py --device "$tdev" "${TORCH_ZUKO[@]}" --json
  else
    skip torch "torch.zuko@$tdev" "zuko is not installed and no .whl/zuko-*.whl was carried"
  fi
  if [ -f benches/torch/higlow.py ]; then
    run_step "torch.glow@$tdev" 90 "${py[@]}" benches/torch/higlow.py --device "$tdev" "${TORCH_GLOW[@]}" --json
  else
    skip torch "torch.glow@$tdev" "benches/torch/higlow.py not in this checkout"
  fi
}

tests() {
  group tests 200
  local t
  # the integration tests first (GPU parity, golden, CLI), the unit tests of the lib and the binary last
  local failed=() t rc
  for t in $(ls "$X/tests" | grep -v -- '-unit$') $(ls "$X/tests" | grep -- '-unit$'); do
    run_step "test.$t" 120 env GFORGE_STRICT=1 "$X/tests/$t"
    rc=$?
    case $rc in 0 | 99 | 124 | 137) ;; *) failed+=("$t") ;; esac
  done
  # A failure may come from another WGPU backend (GL through EGL): run those again on Vulkan alone.
  if [ ${#failed[@]} -gt 0 ] && [ -n "$VK" ]; then
    for t in "${failed[@]}"; do
      run_step "test.$t@vulkan-only" 90 env GFORGE_STRICT=1 WGPU_BACKEND=vulkan "$X/tests/$t"
    done
  fi
}

vulkan_examples() {
  group vulkan 120
  if [ -z "$VK" ]; then
    skip vulkan "gforge.*@vulkan" "no Vulkan adapter"
    return
  fi
  export WGPU_BACKEND=vulkan
  speed_examples "$VK" "vulkan"
  unset WGPU_BACKEND
}

# ------------------------------------------------------------------------------------------------------------
summary() {
  echo
  echo "######## summary ($(($(now) - T0))s)"
  python3 - "$RESULTS" "$WORK/logs" "$JSON" "$SCALE" "$(($(now) - T0))" "${GPU_COMMIT:-?}" "$VK_NAME" <<'PY'
import json, os, re, subprocess, sys
results, logs, out, scale, wall, commit, vk_name = sys.argv[1:8]
steps = []
for line in open(results):
    g, n, st, rc, secs, note = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    steps.append({"group": g, "name": n, "status": st, "rc": rc, "seconds": float(secs or 0), "note": note})

def log_of(name):
    p = os.path.join(logs, re.sub(r"[^A-Za-z0-9_.@:-]", "_", name) + ".log")
    return open(p, errors="replace").read() if os.path.exists(p) else ""

NUM = re.compile(r"(?:GFLOP/s|_per_s|_s$|loss|params|batch|layers|image|steps)")
figures = {}
for s in steps:
    if s["status"] != "PASS" or not (s["name"].startswith("gforge.") or s["name"].startswith("torch.")):
        continue
    text, fig = log_of(s["name"]), {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            key = d.get("bench", "")
            for k, v in d.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    fig[f"{key}.{k}" if key.startswith("zuko") else k] = v
            for k in ("device", "impl"):
                if k in d:
                    fig[k] = d[k]
        m = re.search(r"matmul (\d+)\^3: median ([\d.]+) ms, ([\d.]+) GFLOP/s", line)
        if m:
            fig.update(n=int(m.group(1)), median_ms=float(m.group(2)), gflops=float(m.group(3)))
        m = re.match(r"(enc|dec) (\S+) @(\d+)\s+median\s+([\d.]+) ms\s+([\d.]+) GFLOP/s", line)
        if m:
            fig[f"{m.group(1)} {m.group(2)} @{m.group(3)} GFLOP/s"] = float(m.group(5))
    if fig:
        figures[s["name"]] = fig

# headline: one row per measurement, one column per implementation/device
def pick(prefix, field):
    for name, f in figures.items():
        if name.startswith(prefix + "@") and field in f:
            return name.split("@", 1)[1], f[field]
    return None, None

rows = [("NSF train stars/s", "nsf", "train_stars_per_s"), ("NSF sample stars/s", "nsf", "sample_stars_per_s"),
        ("AE images/s", "ae", "images_per_s"), ("Glow train maps/s", "glow", "train_maps_per_s"),
        ("Glow sample maps/s", "glow", "sample_maps_per_s")]
rows += [(f"matmul {n}^3 GFLOP/s", f"matmul{n}", "gflops") for n in sorted(
    {int(m) for k in figures for m in re.findall(r"matmul(\d+)@", k)})]
rows += [("zuko MAF train stars/s", "zuko", "zuko_maf.train_stars_per_s"),
         ("zuko NSF train stars/s", "zuko", "zuko_nsf.train_stars_per_s"),
         ("zuko MAF sample stars/s", "zuko", "zuko_maf.sample_stars_per_s"),
         ("zuko NSF sample stars/s", "zuko", "zuko_nsf.sample_stars_per_s")]
cols = []
for name in figures:
    impl, dev = name.split(".", 1)[0], name.split("@", 1)[1]
    if (impl, dev) not in cols:
        cols.append((impl, dev))
headline = {}
table = []
for label, bench, field in rows:
    cells = {}
    for impl, dev in cols:
        f = figures.get(f"{impl}.{bench}@{dev}", {})
        if field in f:
            cells[f"{impl}@{dev}"] = f[field]
    if cells:
        headline[label] = cells
        table.append((label, cells))

counts = {}
for s in steps:
    counts[s["status"]] = counts.get(s["status"], 0) + 1
ok = not any(s["status"] in ("FAIL", "TIMEOUT") for s in steps)

def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return None

doc = {"ok": ok, "counts": counts, "scale": scale, "wall_s": int(wall), "commit": commit, "gpu": gpu_name(),
       "vulkan_adapter": " ".join(vk_name.split()) or None, "headline": headline,
       "steps": steps, "figures": figures}
json.dump(doc, open(out, "w"), indent=1)

print(f"{'status':<8} {'seconds':>7}  step  (note)")
for s in steps:
    print(f"{s['status']:<8} {s['seconds']:>7.1f}  {s['name']}" + (f"  ({s['note']})" if s["note"] else ""))
print()
if table:
    names = [f"{i}@{d}" for i, d in cols]
    w = max(12, *(len(n) for n in names))
    print(f"{'headline':<26}" + "".join(f"{n:>{w + 2}}" for n in names))
    for label, cells in table:
        print(f"{label:<26}" + "".join(
            f"{(format(cells[n], '.4g') if n in cells else '-'):>{w + 2}}" for n in names))
    print()
print("counts:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), "->", "OK" if ok else "FAILED")
PY
}

main() {
  setup || { summary; return 1; }
  devices
  want selftest && selftest
  want cuda && cuda_examples
  want tests && tests
  want torch && torch_benches
  want vulkan && vulkan_examples
  summary
  ! cut -f3 "$RESULTS" | grep -qxE 'FAIL|TIMEOUT'
}

main 2>&1 | tee "$REPORT"
rc=${PIPESTATUS[0]}
echo "report: $REPORT, $JSON (exit $rc)"
exit "$rc"
