#!/usr/bin/env bash
# Prints registers, shared memory, spills and stack frame of every kernel, for
# each target, as ptxas reported them when the kernels were compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-cuda.sh
cargo run --quiet -p reclip-cuda --features cuda --example ptxas_report
