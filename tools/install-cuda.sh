#!/usr/bin/env bash
# Installs nvcc from CUDA 13.0 (the PyPI wheels NVIDIA publishes), and
# cuobjdump beside it for tools/sass-check.sh, into the git-ignored folder
# .cuda/ of this checkout. Idempotent: a second run with the same pins does
# nothing. The build finds nvcc there by itself (crates/reclip-cuda/build.rs);
# print its path with --print-nvcc.
#
# Why 13.0: our H200 test machines run a CUDA 13.0 driver, and PTX from a
# newer nvcc does not load on an older driver.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cuda"
pins=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-cccl==13.0.85   # provides <nv/target>
  nvidia-cuda-runtime==13.0.96
  # cuobjdump and the nvdisasm it runs for --dump-sass. PyPI has none older
  # than 13.2; a disassembler loads nothing on the driver, so the 13.0 limit
  # above does not bind it, and 13.2 reads 13.0's sm_80 and sm_90 cubins.
  nvidia-cuda-cuobjdump==13.2.86
  nvidia-cuda-nvdisasm==13.2.86
)
nvcc="$dest/site/nvidia/cu13/bin/nvcc"
stamp="$dest/installed"

if [[ "${1:-}" == "--print-nvcc" ]]; then
  echo "$nvcc"
  exit 0
fi

if [[ -x "$nvcc" && -f "$stamp" && "$(cat "$stamp")" == "${pins[*]}" ]]; then
  exit 0
fi

rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dest/site" "${pins[@]}"
"$nvcc" --version | tail -n 1
echo "${pins[*]}" >"$stamp"
