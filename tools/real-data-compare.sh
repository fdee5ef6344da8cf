#!/usr/bin/env bash
# RECLIP against the baseline on real data, from scratch: lays out
# Fashion-MNIST as a user would (tools/real-data.sh: a caption list and an
# ImageFolder test split), then runs `reclip compare` on it with the model of
# tools/real-data-model.json (4 layers of width 128 per tower, 4x4 patches)
# for 2 epochs at batch 256 and prints the comparison table. RECLIP runs the
# best schedule of BENCHMARKS.md's ablations, three stages: 72% of the steps
# at 16 px and text length 13 (no caption is longer), 12% at 24 px, 16% at
# 32 px and the full 16 tokens; the baseline runs every step at 32 px.
# Extra arguments go to `reclip compare` (e.g. --finetune-lr 1e-3). About
# 45 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/real-data.sh --dataset fashion-mnist
data=data/real/fashion-mnist
cargo build --release --quiet --bin reclip
target/release/reclip compare \
  --data "$data/train.tsv" --eval-zero-shot "$data/test" \
  --classnames "$data/classnames.txt" --templates "$data/templates.txt" \
  --model tools/real-data-model.json --batch-size 256 --epochs 2 \
  --stages 16:13:0.72,24:13:0.12,32:0.16 --quiet --out runs/real-data-compare "$@"
