#!/usr/bin/env bash
# The one prepared script for a GPU loan: a rare, short lease of one H200
# (about 15 minutes of device time in all, at most 10 minutes a command) with
# no Rust toolchain and no network there.
#
#   tools/gpu-check.sh build
#       Here, with cargo: the release --features cuda builds of reclip, of the
#       one kernel-test binary (tests/gpu_kernels.rs) and of the GPU benches,
#       stripped, with the wheels of the PyTorch peer (open_clip is not
#       installed there), packed into .gpu-bundle/bundle.tar.xz. Beside them,
#       for the nccl stage, the --features nccl builds of reclip and of
#       reclip-dist's allreduce_time, which link libmpi, and the Open MPI they
#       need (the device has none; see bundle_mpi). It fails above 60 MiB: the
#       whole working tree travels in 64 MiB.
#
#   tools/gpu-check.sh run [--rehearse] [--quick] OUTDIR
#       There: unpack the bundle and run the stages smoke, kernels, sanitizer,
#       speed, nccl, benches and peer, each under its own time limit, all of
#       them within 480 s, so that one command of at most 600 s holds them,
#       the transfers and a margin. A failing stage does not stop the next,
#       except smoke: nothing is worth running on a device that cannot run a
#       kernel. Each stage leaves OUTDIR/<stage>.log; OUTDIR/summary.json
#       (with the speed stage's whole speed.json in it) is rewritten after
#       every stage, so a killed run still leaves one; the summary table is
#       the last thing printed. At most 8 files, as the device tool returns.
#       --rehearse: the same stages here, on the kernel emulator and the CPU.
#       --quick: a subset of each stage (CI runs `run --rehearse --quick`).
#       RECLIP_PEER_PYTHON: the python with torch for the peer (python3).
#
# On the device tool: command `bash tools/gpu-check.sh run "$OUT"`, carry
# [".gpu-bundle/bundle.tar.xz"], timeout_s 570.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
archive="$root/.gpu-bundle/bundle.tar.xz"
wheel_cache="$root/.gpu-bundle/wheels"
max_mib=60
benches=(attention embed norm mlp clip_loss)
# open_clip's own needs (torch, torchvision, regex, tqdm, huggingface_hub,
# safetensors, timm) are installed there; these are not.
wheels=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4)

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

# cargo_copy KIND DEST CARGO_ARGS...: runs cargo, then copies the executables
# of that kind it built into DEST at once: a later build with other features
# (a test build adds the dev-dependencies') writes the same target/release/reclip.
cargo_copy() {
  local want=$1 dest=$2 kind name path
  shift 2
  cargo "$@" --message-format=json-render-diagnostics >"$stage/cargo.json" || die "cargo $1 failed (see the errors above)"
  while read -r kind name path; do
    [[ $kind == "$want" ]] && cp "$path" "$dest/$name"
  done < <(python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        print(msg["target"]["kind"][0], msg["target"]["name"], msg["executable"])
' <"$stage/cargo.json")
}

# ompi_path NAME: one of Open MPI's install folders (bindir, pkglibdir, ...).
ompi_path() {
  ompi_info --path "$1" | sed 's/^[^:]*: *//'
}

# bundle_mpi DEST PROGRAM...: the Open MPI that PROGRAMs link, for a device
# that has none (KINDS.md lists no MPI there): its libraries; the components
# it loads at run time (not those for networks between machines, InfiniBand,
# UCX, libfabric, PSM, netlink, nor OpenSHMEM's: one machine's ranks use
# none, and their libraries are not there); orted, which a singleton (a rank
# started without mpirun) forks to manage it; its help texts, which its
# error messages are made of; PMIx's components and texts when it uses an
# external PMIx. mpi_env points Open MPI at DEST there.
bundle_mpi() {
  local dest=$1 bindir pkglibdir comp deps pmix name path
  shift
  command -v ompi_info >/dev/null || die "no ompi_info: the nccl stage bundles Open MPI (tools/install-mpi.sh)"
  bindir=$(ompi_path bindir) pkglibdir=$(ompi_path pkglibdir)
  mkdir -p "$dest"/{bin,lib/openmpi,lib/pmix,extra,share,etc}
  cp "$bindir/orted" "$dest/bin/" || die "no orted in $bindir: the bundled MPI needs Open MPI 4"
  cp -r "$(ompi_path pkgdatadir)" "$dest/share/openmpi" || die "no Open MPI help texts"
  for comp in "$pkglibdir"/mca_*.so; do
    # Read whole: grep -q stopping early would fail the pipe (pipefail).
    deps=$(ldd "$comp")
    grep -qE '^\s*lib(fabric|uc[mpst]|ibverbs|rdmacm|efa|psm|infinipath|nl-|oshmem)' <<<"$deps" ||
      cp "$comp" "$dest/lib/openmpi/"
  done
  pmix=$(ldd "$dest"/lib/openmpi/mca_pmix_*.so 2>/dev/null | awk '$1 ~ /^libpmix[.]so/ {print $3; exit}')
  if [[ -n $pmix ]]; then
    pmix=$(dirname "$(readlink -f "$pmix")")
    if compgen -G "$pmix/pmix/*.so" >/dev/null; then cp "$pmix"/pmix/*.so "$dest/lib/pmix/"; fi
    if [[ -d $pmix/../share/pmix ]]; then cp -r "$pmix/../share/pmix" "$dest/share/pmix"; fi
  fi
  # Every library all of these load, but the C and C++ runtimes, which the
  # device has in newer versions: Open MPI's and PMIx's own in lib/, used
  # always (its components must match them); the others in extra/, used
  # where the device lacks them.
  while read -r name path; do
    case $name in
      linux-vdso* | ld-linux* | libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libgcc_s* | libstdc++*) ;;
      libmpi* | libopen-* | libpmix* | libmca_common_*) cp -L "$path" "$dest/lib/$name" ;;
      *) cp -L "$path" "$dest/extra/$name" ;;
    esac
  done < <(ldd "$@" "$dest/bin/orted" "$dest"/lib/openmpi/*.so "$dest"/lib/pmix/*.so 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u)
  compgen -G "$dest/lib/libmpi.so*" >/dev/null || die "the nccl programs link no libmpi (built without the mpi feature?)"
}

build() {
  cd "$root" || die "no checkout at $root"
  tools/install-cuda.sh || die "tools/install-cuda.sh failed"
  tools/install-mpi.sh || die "tools/install-mpi.sh failed"
  stage=$(mktemp -d) || die "mktemp failed"
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/bin" "$stage/benches" "$stage/nccl" "$stage/wheels" "$wheel_cache"

  local bench_flags=() b name
  for b in "${benches[@]}"; do bench_flags+=(--bench "$b"); done
  cargo_copy bin "$stage/bin" build --release --features cuda --bin reclip
  cargo_copy test "$stage/bin" test --release --features cuda --test gpu_kernels --no-run
  cargo_copy bench "$stage/benches" bench --features cuda "${bench_flags[@]}" --no-run
  # Apart from bin/reclip, so that no other stage depends on MPI.
  cargo_copy bin "$stage/nccl" build --release --features nccl --bin reclip
  cargo_copy example "$stage/nccl" build --release -p reclip-dist --features nccl --example allreduce_time
  rm "$stage/cargo.json"
  for name in bin/reclip bin/gpu_kernels "${benches[@]/#/benches/}" nccl/reclip nccl/allreduce_time; do
    [[ -f "$stage/$name" ]] || die "cargo built no $name"
  done
  bundle_mpi "$stage/mpi" "$stage"/nccl/*
  strip "$stage"/bin/* "$stage"/benches/* "$stage"/nccl/* || die "strip failed"

  local spec
  for spec in "${wheels[@]}"; do
    # Wheel names normalise the project name and keep its version.
    if ! compgen -G "$wheel_cache/${spec%%==*}-${spec##*==}-*.whl" >/dev/null; then
      python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
        -d "$wheel_cache" "$spec" || die "pip could not download $spec"
    fi
    cp "$wheel_cache/${spec%%==*}-${spec##*==}"-*.whl "$stage/wheels/"
  done
  echo "built from $(git describe --always --dirty 2>/dev/null || echo '(no git)') on $(date -u +%FT%TZ)" >"$stage/bundle.txt"

  mkdir -p "$(dirname "$archive")"
  # xz rather than zstd: every Debian or Ubuntu image has xz, not always zstd.
  # -9: a 64 MiB window spans several binaries, which share most of their
  # code, so the bundle packs to half of what -6 gives; nccl/reclip follows
  # bin/reclip, the binary it differs least from.
  tar -C "$stage" -cf - bundle.txt bin nccl benches mpi wheels | xz -9 >"$archive.tmp" || die "packing the bundle failed"
  mv "$archive.tmp" "$archive" || die "cannot move the bundle into place"

  echo "bundle contents (stripped):"
  (cd "$stage" && du -k bin/* benches/* nccl/* wheels/* && du -sk mpi) | awk '{printf "  %8.1f MiB  %s\n", $1 / 1024, $2}'
  local size
  size=$(stat -c %s "$archive")
  awk -v s="$size" -v a="${archive#"$root"/}" 'BEGIN {printf "%s: %.1f MiB compressed\n", a, s / 1048576}'
  ((size <= max_mib * 1048576)) || die "the bundle is over $max_mib MiB: it would not travel with the working tree"
}

# wheel_lib_dirs MODULE...: the lib/ folders of those NVIDIA wheels' python
# packages that are installed, one a line (none without python).
wheel_lib_dirs() {
  python3 - "$@" 2>/dev/null <<'PY' || true
import importlib, os, sys
for mod in sys.argv[1:]:
    try:
        m = importlib.import_module(mod)
    except ImportError:
        continue
    for base in m.__path__:
        print(os.path.join(base, "lib"))
PY
}

# cuBLAS is not part of the driver: find it in a CUDA toolkit or in the
# NVIDIA wheels that PyTorch installs.
find_cublas() {
  local py d
  py=$(wheel_lib_dirs nvidia.cu13 nvidia.cublas)
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $py; do
    if compgen -G "$d/libcublas.so*" >/dev/null; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "cuBLAS from $d"
      return 0
    fi
  done
  echo "warning: libcublas not found; GEMMs will fail"
}

# mpi_env DIR: makes the programs run after it use the Open MPI that
# bundle_mpi put in DIR, whatever the machine has installed, and says what
# it found for the log.
mpi_env() {
  local m=$1 f cache
  # Read whole before grep stops reading, so that ldconfig never dies of a closed pipe.
  cache=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
  echo "installed here: $(grep -oE '^\s*libmpi[.]so[.0-9]*' <<<"$cache" | tr -d ' \t' | paste -sd, - || true); using the bundle's Open MPI"
  for f in "$m"/extra/*; do
    if ! grep -qE "^\s+${f##*/} " <<<"$cache"; then
      ln -sf "$f" "$m/lib/"
      echo "  ${f##*/}: not installed here, the bundle's"
    fi
  done
  export LD_LIBRARY_PATH="$m/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Open MPI's and PMIx's folders, which they otherwise take from where they were built.
  export OPAL_PREFIX=$m OPAL_EXEC_PREFIX=$m OPAL_BINDIR=$m/bin OPAL_LIBDIR=$m/lib OPAL_PKGLIBDIR=$m/lib/openmpi \
    OPAL_DATAROOTDIR=$m/share OPAL_DATADIR=$m/share OPAL_PKGDATADIR=$m/share/openmpi OPAL_SYSCONFDIR=$m/etc
  export PMIX_PREFIX=$m PMIX_EXEC_PREFIX=$m PMIX_BINDIR=$m/bin PMIX_LIBDIR=$m/lib PMIX_PKGLIBDIR=$m/lib/pmix \
    PMIX_DATADIR=$m/share PMIX_PKGDATADIR=$m/share/pmix PMIX_SYSCONFDIR=$m/etc
  export OMPI_MCA_mca_base_component_path=$m/lib/openmpi PMIX_MCA_mca_base_component_path=$m/lib/pmix
  # This machine's ranks only: nothing is started elsewhere (no ssh there).
  export OMPI_MCA_plm=isolated
  # The device runs commands as root, which Open MPI refuses unless told.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}

# libnccl for NcclComm, from the nvidia-nccl wheel PyTorch installs or the
# system. cudarc asks the loader for libnccl.so (or .so.1, .so.9 to .so.13),
# never for the wheel's libnccl.so.2: DIR gets a libnccl.so linked to it and
# goes first on the library path.
find_nccl() {
  local dir=$1 py d lib
  py=$(wheel_lib_dirs nvidia.nccl nvidia.cu13)
  for d in $py /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    for lib in "$d/libnccl.so.2" "$d/libnccl.so"; do
      [[ -e $lib ]] || continue
      mkdir -p "$dir" && ln -sf "$lib" "$dir/libnccl.so"
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "NCCL from $lib"
      return 0
    done
  done
  echo "no libnccl in ${py//$'\n'/, }${py:+, }the system's or CUDA's folders"
  return 1
}

# ---- run: the stages ---------------------------------------------------------

# step LABEL SECONDS STDOUT CMD...: runs CMD for at most SECONDS, capped by
# the end of the stage, with its stderr (and its stdout, when STDOUT is "-")
# appended to the stage's log, and notes its exit status there for the
# summary. 124 or 137: it ran out of time.
step() {
  local label=$1 secs=$2 stdout=$3 left rc t0=$SECONDS
  shift 3
  left=$((stage_end - SECONDS))
  ((secs > left)) && secs=$left
  if ((secs < 3)); then
    printf '## %s: %s (no time left)\n## %s exit 124 after 0s of 0s\n' "$label" "$*" "$label" >>"$log"
    return 124
  fi
  echo "## $label: $* (limit ${secs}s)" >>"$log"
  # The braces send bash's own word on a crash ("Segmentation fault") to the
  # log too.
  {
    if [[ "$stdout" == - ]]; then
      timeout -k 5 "$secs" "$@" >>"$log"
    else
      timeout -k 5 "$secs" "$@" >"$stdout"
    fi
  } 2>>"$log"
  rc=$?
  # A process killed mid-line leaves no newline.
  [[ -s $log && -n $(tail -c 1 "$log") ]] && echo >>"$log"
  echo "## $label exit $rc after $((SECONDS - t0))s of ${secs}s" >>"$log"
  return $rc
}

stage_smoke() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L >>"$log" 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$log" 2>&1
  else
    echo "no nvidia-smi on PATH" >>"$log"
  fi
  cat "$unpacked/bundle.txt" >>"$log"
  if [[ $device == cuda ]]; then
    find_cublas >>"$log"
  fi
  # The reclip binary carries no emulator: a rehearsal's smoke test runs the
  # same check on the CPU, the kernel stage runs the emulator.
  local smoke_device=$device
  [[ $device == emu ]] && smoke_device=cpu
  step device 30 - "$reclip" device --device "$smoke_device"
}

stage_kernels() {
  local filters=()
  [[ $quick == 1 ]] && filters=(demo:: norm:: optim::)
  RECLIP_TEST_DEVICE=$device RECLIP_CUDA_SYNC=1 step gpu_kernels "$stage_budget" - \
    "$unpacked/bin/gpu_kernels" --test-threads=1 "${filters[@]}"
}

stage_sanitizer() {
  local sanitizer rc=0 tool
  if [[ $rehearse == 1 ]]; then
    skip_reason="rehearsal"
    return 0
  fi
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [[ ! -x $sanitizer ]]; then
    skip_reason="no compute-sanitizer"
    return 0
  fi
  # Small cases of the kernels with shared memory and warp reductions:
  # the sanitizer runs kernels tens of times slower.
  local tests=(attention::one_token attention::vit_b16_at_64px_17_tokens norm::forward_and_backward_at_odd_sizes loss::small_batches)
  [[ $quick == 1 ]] && tests=(norm::forward_and_backward_at_odd_sizes)
  for tool in memcheck racecheck; do
    RECLIP_TEST_DEVICE=cuda RECLIP_CUDA_SYNC=1 step "$tool" $((stage_budget / 2)) - \
      "$sanitizer" --tool "$tool" --error-exitcode 1 "$unpacked/bin/gpu_kernels" --test-threads=1 --exact "${tests[@]}" || rc=1
  done
  return $rc
}

# One run per image size, merged into speed.json: a size that runs out of
# time loses only its own row. Each may take an even share of what is left,
# smallest first, so the largest gets what the others did not use. Before
# each, `reclip speed --roofline` for the same model, batch and size (it
# computes in milliseconds, no device): its predicted and floor step times
# join the measured row, and the summary prints them side by side.
stage_speed() {
  local size rc=0 parts=() floors=() n=${#train_sizes[@]} i roofline_args=()
  # The roofline takes --model and --batch-size of the training arguments
  # and refuses those of a run (--device, --precision, --steps).
  for ((i = 0; i < ${#train_args[@]}; i++)); do
    case ${train_args[i]} in
      --model | --batch-size) roofline_args+=("${train_args[i]}" "${train_args[i + 1]}") ;;
    esac
  done
  for size in "${train_sizes[@]}"; do
    floors+=("$unpacked/roofline-$size.json")
    step "roofline_$size" 10 "${floors[-1]}" \
      "$reclip" speed --roofline "${roofline_args[@]}" --image-size "$size" --json || rc=1
    parts+=("$unpacked/speed-$size.json")
    step "speed_$size" $(((stage_end - SECONDS) / n)) "${parts[-1]}" \
      "$reclip" speed "${train_args[@]}" --image-size "$size" --json || rc=1
    n=$((n - 1))
  done
  python3 - "$speed_json" "${parts[@]}" -- "${floors[@]}" <<'PY' || rc=1
import json, sys

args = sys.argv[2:]
cut = args.index("--")


def load(paths):
    out = []
    for path in paths:
        try:
            with open(path) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            pass
    return out


parts, floors = load(args[:cut]), load(args[cut + 1 :])
predicted = {size["image_size"]: size for floor in floors for size in floor["sizes"]}
if parts:
    rows = [row for part in parts for row in part["rows"]]
    for row in rows:
        p = predicted.get(row["image_size"])
        if p:
            row.update(predicted_step_ms=p["predicted_step_ms"], floor_step_ms=p["floor_step_ms"], predicted_mfu=p["mfu_predicted"])
    extra = {"roofline_assumptions": floors[0]["assumptions"]} if floors else {}
    with open(sys.argv[1], "w") as f:
        json.dump(dict(parts[0], rows=rows, **extra), f, indent=2)
PY
  return $rc
}

# Data parallelism on NCCL with one rank, each program an MPI singleton (no
# mpirun) on the bundled Open MPI: first the MPI bootstrap alone (a CPU
# all-reduce), so that a failure there is told apart from NCCL's; then the
# gradient all-reduce timed through NcclComm (ViT-B-16's parameter count, f32
# and bf16, whole and in DDP's buckets; one rank moves no data, so this is
# the cost of the calls and their event ordering); then a short
# `reclip train --dist-backend nccl`. A rehearsal has no NCCL: it runs the
# bootstrap, and the training through MPI on the CPU. A subshell: the MPI
# and NCCL environment stays out of the later stages.
stage_nccl() (
  local programs="$unpacked/nccl" rc=0 iters=20 steps=4
  [[ $quick == 1 ]] && iters=5 steps=2
  local reduce=(--backend nccl --device cuda --model ViT-B-16 --warmup 3 --iters "$iters")
  local train=(--model ViT-B-16 --batch-size 64 --precision bf16 --device cuda --dist-backend nccl)
  if [[ $rehearse == 1 ]]; then
    steps=2
    train=(--model reclip-tiny --batch-size 16 --precision f32 --device cpu --dist-backend mpi)
  fi
  mpi_env "$unpacked/mpi" >>"$log"
  # NCCL's own words on what fails, beyond its error codes.
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  step mpi 30 - "$programs/allreduce_time" --backend mpi --device cpu --model reclip-tiny --dtypes f32 \
    --warmup 0 --iters 1 || rc=1
  if [[ $rehearse == 0 ]]; then
    # Without one, NcclComm's own error says what is missing.
    find_nccl "$unpacked/nccl-lib" >>"$log" || rc=1
    step allreduce $(((stage_end - SECONDS) / 2)) - "$programs/allreduce_time" "${reduce[@]}" || rc=1
  fi
  step train $((stage_end - SECONDS)) - "$programs/reclip" train "${train[@]}" --steps "$steps" --warmup 1 \
    --finetune-steps 1 --probe-steps 1 --eval-every 0 --checkpoint-every 0 --quiet --out "$unpacked/nccl-train" || rc=1
  exit $rc
)

stage_benches() {
  local b rc=0 filter=() n=${#benches[@]} bench_device=cuda stage_log=$log raw="$unpacked/bench.txt"
  [[ $rehearse == 1 ]] && bench_device=cpu
  for b in "${benches[@]}"; do
    # One small case per binary shows that it runs and that its output
    # parses; on the CPU its numbers mean nothing anyway.
    [[ $rehearse == 1 || $quick == 1 ]] && filter=("${one_bench_case[$b]}")
    log=$raw
    : >"$log"
    # An even share of what is left, so that one slow binary cannot starve
    # the rest. A fresh CRITERION_HOME: no comparisons with earlier runs.
    RECLIP_BENCH_DEVICE=$bench_device CRITERION_HOME="$unpacked/criterion" step "$b" $(((stage_end - SECONDS) / n)) - \
      "$unpacked/benches/$b" --bench --warm-up-time 0.3 --measurement-time 1 --sample-size 10 --noplot --color never \
      "${filter[@]}" || rc=1
    log=$stage_log
    # Keep the results, the memory figures and any error; drop the progress.
    grep -v -e '^Benchmarking ' -e '^Found [0-9]* outliers' -e '^ *[0-9]* ([0-9.]*%) \(high\|low\)' \
      -e '^Warning: Unable to complete' "$raw" >>"$log" || true
    n=$((n - 1))
  done
  return $rc
}

stage_peer() {
  local py=${RECLIP_PEER_PYTHON:-python3} site args=()
  if ! "$py" -c 'import torch' >>"$log" 2>&1; then
    skip_reason="no torch"
    return 0
  fi
  site="$unpacked/site"
  step pip 60 - "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
    --no-cache-dir --target "$site" "$unpacked"/wheels/*.whl || return 1
  local sizes="${train_sizes[*]}"
  args=("${train_args[@]}" --image-size "${sizes// /,}")
  # On the CPU one warm-up step is enough to load everything.
  [[ $rehearse == 1 ]] && args+=(--warmup 1)
  # --out: rewritten after each size, so that a timeout keeps the sizes done.
  # PyTorch's attention at the attention bench's shapes first: it takes
  # seconds, the training peer the rest.
  local attention_iters=50
  [[ $rehearse == 1 ]] && attention_iters=1
  PYTHONUNBUFFERED=1 step peer_attention 60 - \
    "$py" "$root/tools/peer_attention.py" --iters "$attention_iters" --out "${peer_json%/*}/peer_attention.json"
  PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 step peer $((stage_end - SECONDS)) - \
    "$py" "$root/tools/peer_openclip.py" "${args[@]}" --out "$peer_json"
}

# summarize ARGS...: the summary's keeper (python, below): "stage NAME STATUS
# SECONDS REASON" records a stage in summary.json, reading its figures off its
# log; "table" prints the summary.
summarize() {
  python3 - "$outdir" "$peer_json" "$speed_json" "$mode" "$@" <<'PY'
import json, os, re, signal, sys

outdir, peer_json, speed_json, mode, verb, *args = sys.argv[1:]
path = os.path.join(outdir, "summary.json")
try:
    with open(path) as f:
        summary = json.load(f)
except (OSError, ValueError):
    summary = {"mode": mode, "stages": []}


def read(name):
    try:
        with open(os.path.join(outdir, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_line(text):
    # Not step()'s notes, nor bash's word on a crash, which names step()'s command.
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("## ") and "timeout -k" not in l]
    return lines[-1].strip()[:300] if lines else ""


def failed_steps(log):
    """(label, what happened, the last line it printed) of each failed step,
    from step()'s notes."""
    out = []
    for section in re.split(r"^(?=## \S+: )", log, flags=re.M):
        end = re.search(r"^## (\S+) exit (\d+) after \d+s of (\d+)s$", section, re.M)
        if not end or end.group(2) == "0":
            continue
        label, rc, limit = end.groups()
        rc = int(rc)
        if limit == "0":
            what = "not run: no time left"
        elif rc in (124, 137):
            what = f"timed out after {limit}s"
        elif rc > 128 and rc - 128 in signal.valid_signals():
            what = f"killed by {signal.Signals(rc - 128).name}"
        else:
            what = f"exit {rc}"
        out.append((label, what, last_line(section)))
    return out


def step_failures(log):
    return "; ".join(f"{label} {what}" + (f": {said}" if said else "") for label, what, said in failed_steps(log))


def libtest(log):
    """Counts of the last libtest run in the log; the test running when it
    died; the first failure's message (on a GPU a fault fails every later test,
    so the first failure is the one to read)."""
    figures = {}
    results = re.findall(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", log, re.M)
    if results:
        figures.update(zip(("passed", "failed", "ignored"), map(int, results[-1])))
    else:
        # A test that never finished has no outcome after its dots, or only
        # the shell's word on the crash.
        started = re.findall(r"^test (\S+) \.\.\. ?(ok|FAILED|ignored)?", log, re.M)
        figures["passed"] = sum(outcome == "ok" for _, outcome in started)
        figures["failed_before"] = [name for name, outcome in started if outcome == "FAILED"]
        if started and not started[-1][1]:
            figures["died_in"] = started[-1][0]
    block = re.search(r"^---- (\S+) stdout ----\n(.*?)(?=^---- |^failures:$|\Z)", log, re.M | re.S)
    if block:
        lines = [l.strip() for l in block.group(2).splitlines() if l.strip() and not l.startswith("note:")]
        panic = next((i for i, l in enumerate(lines) if "panicked at" in l), None)
        message = lines[panic + 1 : panic + 3] if panic is not None else lines[:2]
        figures["first_failure"] = f"{block.group(1)}: {' '.join(message)}"[:400]
    return figures


def figures_of(stage, log):
    if stage == "smoke":
        return {"device": last_line(log)}
    if stage == "kernels":
        return libtest(log)
    if stage == "sanitizer":
        figures = {}
        for section in re.split(r"^(?=## \w+: )", log, flags=re.M):
            tool = re.match(r"## (\w+): ", section)
            errors = re.search(r"ERROR SUMMARY: (\d+) errors?", section)
            hazards = re.search(r"RACECHECK SUMMARY: (\d+) hazards?", section)
            if tool and (errors or hazards):
                figures[tool.group(1)] = int((hazards or errors).group(1))
        return figures
    if stage == "speed":
        return load(speed_json) or {}
    if stage == "nccl":
        figures = {}
        version = re.search(r"^NCCL (\S+), ", log, re.M)
        if version:
            figures["nccl"] = version.group(1)
        rows = []
        for line in log.splitlines():
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
        # The bootstrap check's row (reclip-tiny on the CPU) says only that MPI ran.
        rows = [r for r in rows if r.get("model") != "reclip-tiny" or mode.startswith("rehearsal")]
        if rows:
            figures["allreduce"] = rows
        return figures
    if stage == "benches":
        figures = {"results": len(re.findall(r"\btime:\s+\[", log))}
        # Criterion's median throughput of reclip's bf16 attention kernels.
        attention = {}
        for m in re.finditer(r"^attention_(fwd|bwd)_cuda_bf16/(\w+)\s*\n(?:.*\n)*?\s*thrpt:\s+\[\S+ \S+ (\S+) (\S+)", log, re.M):
            scale = {"Gelem/s": 1e-3, "Telem/s": 1.0, "Melem/s": 1e-6}.get(m.group(4))
            if scale:
                attention.setdefault(m.group(2), {})[m.group(1) + "_tflops"] = float(m.group(3)) * scale
        if attention:
            figures["attention"] = attention
        return figures
    if stage == "peer":
        peer = load(peer_json) or {}
        figures = {k: peer[k] for k in ("rows", "torch", "open_clip", "device") if k in peer}
        sdpa = load(os.path.join(os.path.dirname(peer_json), "peer_attention.json"))
        if sdpa:
            figures["attention"] = sdpa.get("rows", [])
        return figures
    return {}


def reason_of(stage, figures, log):
    if stage == "kernels":
        if "first_failure" in figures:
            return f"{figures.get('failed', '?')} failed; first: {figures['first_failure']}"
        if "died_in" in figures:
            failed = figures["failed_before"]
            before = f"; failed before it: {', '.join(failed[:5])}" if failed else ""
            what = ", ".join(what for _, what, _ in failed_steps(log)) or "stopped"
            return f"gpu_kernels {what} in {figures['died_in']}{before}"
    return step_failures(log) or last_line(log)


def record(stage, status, seconds, reason):
    log = read(f"{stage}.log")
    entry = {"stage": stage, "status": status, "seconds": int(seconds)}
    figures = figures_of(stage, log) if status in ("ok", "fail") else {}
    if figures:
        entry["figures"] = figures
    if status != "ok":
        entry["reason"] = reason or (reason_of(stage, figures, log) if status == "fail" else "")
    summary["stages"] = [s for s in summary["stages"] if s["stage"] != stage] + [entry]
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"== {stage}: {status} ({int(seconds)}s){': ' + entry['reason'] if entry.get('reason') else ''}"[:600], flush=True)


def brief(entry):
    figures = entry.get("figures", {})
    stage = entry["stage"]
    if stage == "kernels" and "ignored" in figures:
        return f"{figures['passed']} passed, {figures['failed']} failed, {figures['ignored']} ignored"
    if stage == "kernels" and "passed" in figures:
        return f"{figures['passed']} passed, {len(figures['failed_before'])} failed, then no result"
    if stage == "sanitizer" and figures:
        return ", ".join(f"{tool} {n} {'hazards' if tool == 'racecheck' else 'errors'}" for tool, n in figures.items())
    if stage == "benches" and figures:
        return f"{figures['results']} results"
    if stage == "nccl" and figures:
        rows = figures.get("allreduce", [])
        times = ", ".join(
            f"{r['dtype']} {r['layout']} {r['device_ms'] if r.get('device_ms') is not None else r['host_ms']:.3f} ms"
            for r in rows
        )
        return f"NCCL {figures['nccl']}: {times}" if "nccl" in figures else times
    if stage in ("speed", "peer") and figures.get("rows"):
        return f"{figures.get('device', '')}, " + ", ".join(f"{r['image_size']} px {r['images_per_second']:.0f}/s" for r in figures["rows"])
    return figures.get("device", "")


def table():
    stages = summary["stages"]
    print(f"\n== gpu-check summary ({summary['mode']}) ==")
    print(f"{'stage':<10} {'status':<30} {'secs':>5}  figures")
    for entry in stages:
        status = entry["status"]
        if status == "skipped":
            status += f" ({entry.get('reason', '')})"
        print(f"{entry['stage']:<10} {status:<30} {entry['seconds']:>5}  {brief(entry)}"[:300])
        if entry["status"] == "fail" and entry.get("reason"):
            print(f"{'':<10} {entry['reason']}"[:600])
    by_stage = {s["stage"]: s.get("figures", {}) for s in stages}
    ours = {r["image_size"]: r for r in by_stage.get("speed", {}).get("rows", [])}
    theirs = {r["image_size"]: r for r in by_stage.get("peer", {}).get("rows", [])}
    if ours:
        print(f"\n{'image px':>8} {'tokens':>6} {'reclip img/s':>13} {'MFU':>6} {'open_clip img/s':>16} {'ratio':>6}")
        for size, r in ours.items():
            mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
            peer = theirs.get(size, {}).get("images_per_second")
            ratio = f"{r['images_per_second'] / peer:.2f}" if peer else "-"
            peer = f"{peer:.1f}" if peer else "-"
            print(f"{size:>8} {r.get('tokens', '-'):>6} {r['images_per_second']:>13.1f} {mfu:>6} {peer:>16} {ratio:>6}")
        print("ratio = reclip / open_clip (same model, batch, text length and precision)")
        if any("predicted_step_ms" in r for r in ours.values()):
            print(f"\n{'image px':>8} {'measured ms':>12} {'predicted ms':>13} {'floor ms':>9} {'measured/predicted':>19}")
            for size, r in ours.items():
                predicted, floor = r.get("predicted_step_ms"), r.get("floor_step_ms")
                ratio = f"{r['step_ms'] / predicted:.2f}" if predicted else "-"
                predicted = f"{predicted:.1f}" if predicted else "-"
                floor = f"{floor:.1f}" if floor else "-"
                print(f"{size:>8} {r['step_ms']:>12.1f} {predicted:>13} {floor:>9} {ratio:>19}")
            print("measured: this run's device; predicted and floor: `reclip speed --roofline`, an H200's, computed")
    mine = by_stage.get("benches", {}).get("attention", {})
    sdpa = {r["case"]: r for r in by_stage.get("peer", {}).get("attention", [])}
    if mine or sdpa:
        print(f"\n{'attention, bf16, d = 64':<22} {'reclip fwd':>11} {'SDPA fwd':>9} {'reclip bwd':>11} {'SDPA bwd':>9}  TFLOP/s")
        for case in sorted(set(mine) | set(sdpa), key=lambda c: int(re.sub(r"\D*", "", c.rsplit("L", 1)[-1]) or 0)):
            cell = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "-"
            m, p = mine.get(case, {}), sdpa.get(case, {})
            print(f"{case:<22} {cell(m.get('fwd_tflops')):>11} {cell(p.get('forward_tflops')):>9} "
                  f"{cell(m.get('bwd_tflops')):>11} {cell(p.get('backward_tflops')):>9}")
        print("reclip: cargo bench --bench attention (criterion's median); SDPA: tools/peer_attention.py; both count 4·B·H·L²·d forward, 10·B·H·L²·d backward")


if verb == "stage":
    record(*args)
else:
    table()
PY
}

# Keeps a runaway log returnable: the device tool brings back 16 MiB a file.
truncate_log() {
  local f=$1 max=$((4 * 1048576))
  [[ -f $f ]] || return 0
  (($(stat -c %s "$f") > max)) || return 0
  { head -c 1048576 "$f"; printf '\n[... cut by gpu-check ...]\n'; tail -c 2097152 "$f"; } >"$f.cut" && mv "$f.cut" "$f"
}

# run_stage NAME BUDGET: runs stage_NAME with at most BUDGET seconds, less the
# floors of the stages after it, and records the outcome.
run_stage() {
  local name=$1 t0=$SECONDS rc status reason=""
  stage_budget=$2
  local left=$((deadline - SECONDS - ${floor_after[$name]}))
  ((stage_budget > left)) && stage_budget=$left
  log="$outdir/$name.log"
  skip_reason=""
  if ((stage_budget < ${floor[$name]})); then
    summarize stage "$name" skipped 0 deadline
    return 0
  fi
  : >"$log"
  stage_end=$((SECONDS + stage_budget))
  "stage_$name"
  rc=$?
  truncate_log "$log"
  if [[ -n $skip_reason ]]; then
    echo "skipped ($skip_reason)" >>"$log"
    status=skipped reason=$skip_reason
  elif ((rc == 0)); then
    status=ok
  else
    status=fail
  fi
  summarize stage "$name" "$status" $((SECONDS - t0)) "$reason"
  [[ $status != fail ]]
}

run() {
  rehearse=0 quick=0
  local arg
  outdir=""
  for arg in "$@"; do
    case "$arg" in
      --rehearse) rehearse=1 ;;
      --quick) quick=1 ;;
      -*) die "unknown option $arg (usage: tools/gpu-check.sh run [--rehearse] [--quick] OUTDIR)" ;;
      *) [[ -z $outdir ]] || die "one OUTDIR only"; outdir=$arg ;;
    esac
  done
  [[ -n $outdir ]] || die "usage: tools/gpu-check.sh run [--rehearse] [--quick] OUTDIR"
  [[ -f $archive ]] || die "no bundle at $archive: run 'tools/gpu-check.sh build' here and carry .gpu-bundle/bundle.tar.xz"
  command -v python3 >/dev/null || die "python3 is needed for the summary"
  mkdir -p "$outdir" || die "cannot create $outdir"
  outdir=$(cd "$outdir" && pwd)
  rm -f "$outdir"/{smoke,kernels,sanitizer,speed,nccl,benches,peer}.log "$outdir"/speed.json "$outdir"/summary.json

  SECONDS=0
  deadline=480
  device=cuda
  mode=gpu
  # The speed and peer stages train the same model on the same batches, with
  # arguments that both `reclip speed` and tools/peer_openclip.py take.
  train_sizes=(64 112 224)
  train_args=(--model ViT-B-16 --batch-size 256 --precision bf16 --device cuda)
  local steps=20
  if [[ $rehearse == 1 ]]; then
    device=emu
    mode=rehearsal
    train_sizes=(32 80)
    train_args=(--model reclip-tiny --batch-size 16 --precision f32 --device cpu)
    steps=2
  fi
  if [[ $quick == 1 ]]; then
    mode+=" quick"
    train_sizes=("${train_sizes[0]}" "${train_sizes[-1]}")
    steps=$((rehearse ? 1 : 5))
  fi
  train_args+=(--steps "$steps")

  unpacked=$(mktemp -d) || die "mktemp failed"
  trap 'rm -rf "$unpacked"' EXIT
  tar -C "$unpacked" -xJf "$archive" || die "cannot unpack $archive"
  reclip="$unpacked/bin/reclip"
  peer_json="$unpacked/peer.json"
  # Not in OUTDIR: summary.json holds it, and OUTDIR's 8 files are the logs and the summary.
  speed_json="$unpacked/speed.json"
  # Criterion's filters are regular expressions; these match one case a
  # precision on either device.
  declare -gA one_bench_case=(
    [attention]='^attention_fwd_\w+/vit_b16_64px_L17$'
    [embed]='^token_embed/forward/'
    [norm]='^layer_norm/forward/\w+_8192x768$'
    [mlp]='^mlp_epilogue/bias_grad/'
    [clip_loss]='^clip_loss/\w+/forward/f32/B1024_d512$'
  )

  # stage budget floor (seconds): the floor is the least worth starting with,
  # and each stage leaves the later stages their floors.
  local plan=(smoke 30 10 kernels 150 30 sanitizer 90 20 speed 120 30 nccl 90 25 benches 90 15 peer 120 40)
  declare -gA floor=() floor_after=()
  local i reserve=0
  for ((i = ${#plan[@]} - 3; i >= 0; i -= 3)); do
    floor[${plan[i]}]=${plan[i + 2]}
    floor_after[${plan[i]}]=$reserve
    reserve=$((reserve + plan[i + 2]))
  done

  local failed=0 broken=0
  for ((i = 0; i < ${#plan[@]}; i += 3)); do
    if ((broken)); then
      summarize stage "${plan[i]}" skipped 0 "smoke failed"
    elif ! run_stage "${plan[i]}" "${plan[i + 1]}"; then
      failed=1
      if [[ ${plan[i]} == smoke ]]; then
        broken=1
        echo "gpu-check: the smoke stage failed, so no other stage runs (see smoke.log)"
      fi
    fi
  done
  echo "total ${SECONDS}s; logs in $outdir"
  summarize table
  return $failed
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  *) die "usage: tools/gpu-check.sh build | run [--rehearse] [--quick] OUTDIR" ;;
esac
