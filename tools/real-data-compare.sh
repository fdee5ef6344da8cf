#!/usr/bin/env bash
# RECLIP against the baseline on real data, from scratch: lays out
# Fashion-MNIST as a user would (tools/real-data.sh: a caption list and an
# ImageFolder test split), then runs `reclip compare` on it with the model of
# tools/real-data-model.json (4 layers of width 128 per tower, 4x4 patches)
# for 2 epochs at batch 256, 16 px main phase, 32 px finetune and baseline,
# and prints the comparison table. Extra arguments go to `reclip compare`
# (e.g. --finetune-fraction 0.15). About 25 minutes on 2 cores.
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
  --low-res 16 --high-res 32 --quiet --out runs/real-data-compare "$@"
