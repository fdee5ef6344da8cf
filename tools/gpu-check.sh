#!/usr/bin/env bash
# The one command for a GPU machine.
#
#   tools/gpu-check.sh build   # here, with cargo: build the GPU test and bench
#                              # binaries (--features cuda) and bundle them,
#                              # stripped, into .gpu-bundle/ (git-ignored)
#   tools/gpu-check.sh run     # there, with only the NVIDIA driver: run every
#                              # bundled kernel test on the GPU against the CPU
#                              # reference (outputs poisoned first), then the
#                              # GPU benches briefly, 20 training steps of
#                              # ViT-B-16 at 64 and 224 px (images/s, model
#                              # FLOPs utilisation), then a summary table
#   tools/gpu-check.sh         # both, on a machine that has cargo and a GPU
#
# Our H200 test machine has no internet and no Rust toolchain: build here, send
# the bundle along (the device tool's `carry: [".gpu-bundle"]`), run there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle="$root/.gpu-bundle"

build() {
  cd "$root"
  tools/install-cuda.sh
  rm -rf "$bundle"
  mkdir -p "$bundle/tests" "$bundle/benches"
  # Kernel tests are the test targets named kernels*; reclip-cuda's own tests
  # check device discovery and the ptxas report. Benches: all but the
  # CPU-only ones.
  cargo test --workspace --release --features cuda --no-run --message-format=json >"$bundle/tests.json"
  cargo bench --features cuda --no-run --message-format=json >"$bundle/benches.json"
  cargo build --release --features cuda --bin reclip
  cp target/release/reclip "$bundle/reclip"
  python3 - "$bundle" <<'PY'
import json, shutil, sys
bundle = sys.argv[1]
def artifacts(path):
    for line in open(path):
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            yield msg["target"]["name"], msg["target"]["kind"], msg["package_id"], msg["executable"]
for name, kind, pkg, exe in artifacts(f"{bundle}/tests.json"):
    if "test" in kind and (name.startswith("kernels") or "/reclip-cuda#" in pkg):
        shutil.copy(exe, f"{bundle}/tests/{name}")
for name, kind, pkg, exe in artifacts(f"{bundle}/benches.json"):
    if "bench" in kind and name not in ("cpu_ops", "emulator"):
        shutil.copy(exe, f"{bundle}/benches/{name}")
PY
  rm "$bundle/tests.json" "$bundle/benches.json"
  strip "$bundle"/tests/* "$bundle"/benches/* "$bundle/reclip" 2>/dev/null || true
  du -sh "$bundle"
  ls "$bundle/tests" "$bundle/benches"
}

# cuBLAS is not part of the driver: find it in a CUDA toolkit or in the
# NVIDIA wheels that PyTorch installs.
find_cublas() {
  local dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
  local py
  py=$(python3 - 2>/dev/null <<'PY' || true
import importlib, os
for mod in ("nvidia.cu13", "nvidia.cublas"):
    try:
        m = importlib.import_module(mod)
    except ImportError:
        continue
    for base in m.__path__:
        print(os.path.join(base, "lib"))
PY
)
  for d in "${dirs[@]}" $py; do
    if ls "$d"/libcublas.so* >/dev/null 2>&1; then
      export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
      echo "cuBLAS from $d"
      return
    fi
  done
  echo "warning: libcublas not found; GEMM tests will fail" >&2
}

run() {
  [[ -d "$bundle/tests" ]] || { echo "no bundle at $bundle: run 'tools/gpu-check.sh build' first" >&2; exit 2; }
  nvidia-smi -L || true
  find_cublas
  export RECLIP_TEST_DEVICE=cuda
  local summary="" failed=0 log
  log=$(mktemp -d)
  for t in "$bundle"/tests/*; do
    local name start rc
    name=$(basename "$t")
    start=$(date +%s)
    set +e
    timeout 300 "$t" --test-threads=1 >"$log/$name.txt" 2>&1
    rc=$?
    set -e
    local passed failed_n
    passed=$(grep -Eo '[0-9]+ passed' "$log/$name.txt" | awk '{s+=$1} END {print s+0}')
    failed_n=$(grep -Eo '[0-9]+ failed' "$log/$name.txt" | awk '{s+=$1} END {print s+0}')
    if [[ $rc -ne 0 ]]; then
      failed=1
      echo "---- $name failed (exit $rc):"
      tail -n 60 "$log/$name.txt"
    fi
    summary+=$(printf '%-28s %7s %7s %6ss %s' "$name" "$passed" "$failed_n" "$(( $(date +%s) - start ))" "$([[ $rc -eq 0 ]] && echo ok || echo FAIL)")$'\n'
  done
  echo
  echo "== GPU benches (brief) =="
  for b in "$bundle"/benches/*; do
    RECLIP_BENCH_DEVICE=cuda timeout 240 "$b" --bench --warm-up-time 0.5 --measurement-time 1 --noplot 2>&1 \
      | grep -E '^[a-z_0-9]+/|time:|thrpt:' || echo "bench $(basename "$b") failed"
  done
  echo
  echo "== Training speed: ViT-B-16, 20 steps per size =="
  if ! timeout 480 "$bundle/reclip" speed --model ViT-B-16 --image-size 64,224 --steps 20 --device cuda; then
    failed=1
    echo "reclip speed failed"
  fi
  echo
  echo "== Summary: kernel tests on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1) =="
  printf '%-28s %7s %7s %7s\n' "test binary" passed failed time
  printf '%s' "$summary"
  exit $failed
}

case "${1:-all}" in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *) echo "usage: tools/gpu-check.sh [build|run]" >&2; exit 2 ;;
esac
