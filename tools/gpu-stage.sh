#!/usr/bin/env bash
# Stages, HERE (a machine with Rust), everything tools/gpu-check.sh needs on a lent GPU machine that has
# no Rust and no network, into ignored folders of this checkout:
#   .gpu/bin.tar.xz   stripped gforge (release, and the debug build the tests spawn), every example
#                     (release) and every test binary of `cargo test --no-run`, in one xz archive (the
#                     binaries share most of their code, so one large-dictionary stream dedupes them)
#   .gpu/manifest.tsv one row per binary: role, name, stripped bytes, the path it was built at
#   .gpu/paths.env    the compile-time paths the test binaries carry (CARGO_MANIFEST_DIR,
#                     CARGO_BIN_EXE_gforge) and the commit staged
#   .gl/*.deb         the Vulkan/EGL loaders (the device README's list), unpacked there only if missing
#   .whl/zuko-*.whl   zuko for benches/torch/zuko_flows.py (pure Python; torch and numpy are there)
# then prints the sizes and fails if what travels (working tree + the three folders) exceeds 60 MiB.
#
# Run it in the checkout the `run` tool sends (the one the session started in, not a helper's worktree):
#   tools/gpu-stage.sh          # honours CARGO_TARGET_DIR and PTXAS; GPU_STAGE_ZUKO=0 skips the wheel
#   tools/gpu-stage.sh --sizes  # only the size report of what is staged
# Then make the `run` call printed at the end (also at the top of tools/gpu-check.sh and in README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
target="${CARGO_TARGET_DIR:-$root/target}"
limit_mib="${GPU_STAGE_LIMIT_MIB:-60}"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
bytes() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# --- sizes ----------------------------------------------------------------------------------------------------
sizes() {
  echo
  echo "== stripped binaries (packed together into .gpu/bin.tar.xz)"
  printf '%-10s %-28s %9s\n' role name MiB
  sort -t$'\t' -k1,1 -k3,3nr .gpu/manifest.tsv | while IFS=$'\t' read -r role name size _; do
    printf '%-10s %-28s %9s\n' "$role" "$name" "$(mib "$size")"
  done
  raw="$(awk -F'\t' '{ s += $3 } END { print s }' .gpu/manifest.tsv)"
  tree="$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s + 0 }')"
  gpu="$(bytes .gpu)"; gl="$(bytes .gl)"; whl="$(bytes .whl)"
  total=$((tree + gpu + gl + whl))
  echo
  printf '%-48s %9s MiB\n' "stripped binaries, uncompressed" "$(mib "$raw")"
  printf '%-48s %9s MiB\n' ".gpu (bin.tar.xz + manifest)" "$(mib "$gpu")"
  printf '%-48s %9s MiB\n' ".gl (Vulkan/EGL loader .debs)" "$(mib "$gl")"
  printf '%-48s %9s MiB\n' ".whl (zuko)" "$(mib "$whl")"
  printf '%-48s %9s MiB\n' "working tree (tracked + untracked, not ignored)" "$(mib "$tree")"
  printf '%-48s %9s MiB (limit %s MiB; the run tool allows 64)\n' "total that travels" "$(mib "$total")" "$limit_mib"
  if [ "$total" -gt $((limit_mib * 1048576)) ]; then
    echo "error: over ${limit_mib} MiB" >&2
    exit 1
  fi
  carry='[".gpu", ".gl"]'
  [ -d .whl ] && carry='[".gpu", ".gl", ".whl"]'
  echo
  echo "Staged commit $(sed -n 's/^GPU_COMMIT=//p' .gpu/paths.env | cut -c1-7) (HEAD $(git rev-parse --short HEAD)). The device call (run tool):"
  echo "  command: bash tools/gpu-check.sh"
  echo "  carry:   $carry"
  echo "  timeout_s: 540"
}

if [ "${1:-}" = --sizes ]; then
  sizes
  exit 0
fi

# --- ignore the staged folders (.gitignore lists them; info/exclude catches an older .gitignore) ----------
exclude="$(git rev-parse --git-path info/exclude)"
for d in .gpu .gl .whl; do
  if ! git check-ignore -q "$d/probe"; then
    mkdir -p "$(dirname "$exclude")"
    echo "/$d/" >>"$exclude"
    echo "added /$d/ to $exclude"
  fi
done

if [ -z "${PTXAS:-}" ]; then
  echo "warning: PTXAS is unset: build.rs embeds the PTX unassembled (the driver still JIT-compiles it)" >&2
fi

# --- build --------------------------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpu-stage.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "== cargo build --release --bin gforge --examples"
cargo build --release --bin gforge --examples --message-format=json >"$tmp/release.json"
echo "== cargo test --no-run"
cargo test --no-run --message-format=json >"$tmp/test.json"

# role<TAB>name<TAB>path, from cargo's JSON: the executables of this checkout's targets
python3 - "$tmp/release.json" "$tmp/test.json" >"$tmp/list.tsv" <<'PY'
import json, sys
rows = []
def artifacts(path):
    for line in open(path):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            yield m
for m in artifacts(sys.argv[1]):
    kind, name = m["target"]["kind"][0], m["target"]["name"]
    if kind == "bin" and name == "gforge":
        rows.append(("bin", "gforge", m["executable"]))
    elif kind == "example":
        rows.append(("example", name, m["executable"]))
for m in artifacts(sys.argv[2]):
    kind, name = m["target"]["kind"][0], m["target"]["name"]
    if m["profile"]["test"]:
        if kind == "test" and name == "capi":
            continue  # builds the C library with cargo and compiles C: needs the toolchain a GPU machine lacks
        # unit tests of the lib and of the gforge binary get the target's kind in their name
        label = name if kind == "test" else f"{name}-{kind}-unit"
        rows.append(("test", label, m["executable"]))
    elif kind == "bin" and name == "gforge":
        rows.append(("bin-debug", "gforge-debug", m["executable"]))
for r in sorted(set(rows)):
    print("\t".join(r))
PY

bin_exe="$(awk -F'\t' '$1 == "bin-debug" { print $3 }' "$tmp/list.tsv")"
[ -n "$bin_exe" ] || { echo "no debug gforge in cargo test's output" >&2; exit 1; }

# --- strip into a staging folder outside the checkout, then one xz archive --------------------------------
mkdir -p "$tmp/s/bin" "$tmp/s/examples" "$tmp/s/tests" .gpu
: >"$tmp/manifest.tsv"
while IFS=$'\t' read -r role name path; do
  case "$role" in
    bin | bin-debug) dest="bin/$name" ;;
    example) dest="examples/$name" ;;
    test) dest="tests/$name" ;;
  esac
  objcopy --strip-all "$path" "$tmp/s/$dest"
  printf '%s\t%s\t%s\t%s\n' "$role" "$name" "$(stat -c %s "$tmp/s/$dest")" "$path" >>"$tmp/manifest.tsv"
done <"$tmp/list.tsv"

# The tests find tests/fixtures through the CARGO_MANIFEST_DIR they were compiled with, and spawn gforge
# through CARGO_BIN_EXE_gforge (both absolute, baked in by env!()): record them, list which binaries embed
# each (gpu-check.sh recreates those paths there), and check the binaries are this checkout's.
uses_root=""; uses_exe=""
for t in "$tmp"/s/tests/*; do
  grep -qF "$root" "$t" && uses_root="$uses_root $(basename "$t")"
  grep -qF "$bin_exe" "$t" && uses_exe="$uses_exe $(basename "$t")"
done
if [ -f "$tmp/s/tests/golden" ] && [[ " $uses_root " != *" golden "* ]]; then
  echo "error: tests/golden does not embed $root: not built from this checkout? Run again." >&2
  exit 1
fi
if [ -f "$tmp/s/tests/cli" ] && [[ " $uses_exe " != *" cli "* ]]; then
  echo "error: tests/cli does not embed $bin_exe: not built from this checkout? Run again." >&2
  exit 1
fi

{
  echo "GPU_MANIFEST_DIR=$root"
  echo "GPU_BIN_EXE=$bin_exe"
  echo "GPU_USES_MANIFEST_DIR=\"${uses_root# }\""
  echo "GPU_USES_BIN_EXE=\"${uses_exe# }\""
  echo "GPU_COMMIT=$(git rev-parse HEAD)"
  echo "GPU_DIRTY=$(git status --porcelain --untracked-files=no | grep -c . || true)"
  echo "GPU_STAGED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >.gpu/paths.env
cp "$tmp/manifest.tsv" .gpu/manifest.tsv

echo "== xz (one stream, 192 MiB dictionary: a minute or two on one core)"
rm -f .gpu/bin.tar.xz
(cd "$tmp/s" && tar cf - bin examples tests) | xz -T1 -9 --lzma2=dict=192MiB >.gpu/bin.tar.xz.part
mv .gpu/bin.tar.xz.part .gpu/bin.tar.xz

# --- Vulkan / EGL loaders (device README: "bring the loaders") ------------------------------------------------
if ! ls .gl/*.deb >/dev/null 2>&1; then
  echo "== apt-get download of the loaders into .gl/"
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# --- zuko (benches/torch/zuko_flows.py); gpu-check.sh skips that step without it ----------------------------
if [ "${GPU_STAGE_ZUKO:-1}" = 1 ] && ! ls .whl/zuko-*.whl >/dev/null 2>&1; then
  echo "== pip download zuko into .whl/"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "zuko==${GPU_STAGE_ZUKO_VERSION:-1.6.0}" ||
    echo "warning: no zuko wheel: gpu-check.sh will skip zuko_flows.py" >&2
fi

sizes
