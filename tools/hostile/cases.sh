# shellcheck shell=bash
# The cases of tools/hostile-inputs.sh, sourced by it: one `check` line each,
#
#     check TIER ID EXPECT NEEDLE reclip-arguments...
#
# TIER: q (also in --quick) or f (full form only). EXPECT:
#   ok      exit 0; NEEDLE, when not empty, is an extended regex that stdout
#           or stderr must match (a skipped file must be named somewhere the
#           user sees it), and stdout must hold no NaN or inf;
#   refuse  exit 2 with stderr's last line `error: ...`, one line, holding
#           NEEDLE: fixed strings joined by `&&`, each of which must be there
#           (the option, the value, the file, field or tensor);
#   either  one of the two, for inputs where a right answer and a clear
#           refusal are both what a careful user would accept (the comment
#           says why): NEEDLE is the refusal's; `either=REGEX` also asks an
#           exit 0 to match REGEX (the right answer).
# Arguments `@out` and `@out.EXT` stand for the case's own output path,
# O/ID or O/ID.EXT; `@latest:DIR` for DIR's latest checkpoint's model;
# `@copy:PATH` for a fresh copy of PATH (O/ID.copy), for a case that may
# rightly change what it is given.
#
# Variables from the runner: C (the corpus), P (a finished run), O (the
# folder of the cases' outputs). Both C and P are fingerprinted after every
# case: no case may change them.

M=$C/model.safetensors
# Tiny runs: two steps of four pairs, no evaluation or checkpoint on the way,
# a one-step probe.
T=(--eval-every 0 --checkpoint-every 0 --probe-steps 1 --quiet)
TS=(--steps 2 --batch-size 4 "${T[@]}")
ZS=(--eval-zero-shot "$C/folders/zs-good")

# --- The good inputs work: without these the refusals below prove nothing.
check q good-builtin ok 'report:' train "${TS[@]}" --out @out
check q good-csv ok 'report:' train "${TS[@]}" --data "$C/good.csv" --out @out
check q good-shards ok 'report:' train "${TS[@]}" --data "$C/shards/good-{0..1}.tar" --out @out
check f good-config ok 'report:' train "${TS[@]}" --model "$C/configs/good.json" --low-res 16 --out @out
check q good-eval ok 'top-1' eval --checkpoint "$M"
check f good-eval-folder ok 'top-1' eval --checkpoint "$M" "${ZS[@]}" \
    --classnames "$C/text/classnames.txt" --templates "$C/text/templates.txt"
check q good-embed ok 'wrote' embed --checkpoint "$M" --images "$C/folders/embed-good" \
    --texts "$C/text/captions.txt" --out @out.safetensors
check q good-flops ok 'GFLOPs' flops --model reclip-tiny
check f good-flops-config ok 'GFLOPs' flops --model "$C/configs/good.json"

# --- Unbounded work from a small input: refused, before the work.
check q brace-range refuse '000000000..999999999' train "${TS[@]}" \
    --data "$C/shards/{000000000..999999999}.tar" --out @out
check f missing-shards refuse 'missing-' train "${TS[@]}" --data "$C/shards/missing-{0..3}.tar" --out @out
check q config-vision-layers refuse 'layers' train "${TS[@]}" --model "$C/configs/vision-layers-1e9.json" --out @out
check f config-text-layers refuse 'layers' train "${TS[@]}" --model "$C/configs/text-layers-1e9.json" --out @out
check f config-vision-width refuse 'width' train "${TS[@]}" --model "$C/configs/vision-width-1e9.json" --out @out
check q config-text-width refuse 'width' train "${TS[@]}" --model "$C/configs/text-width-1e9.json" --out @out
check q config-vocab refuse 'vocab_size' train "${TS[@]}" --model "$C/configs/vocab-1e12.json" --out @out
check q config-context refuse 'context_length' train "${TS[@]}" --model "$C/configs/context-1e9.json" --out @out
check f config-image-size refuse 'image_size' train "${TS[@]}" --model "$C/configs/image-size-1e9.json" --out @out
check f config-embed-dim refuse 'embed_dim' train "${TS[@]}" --model "$C/configs/embed-dim-1e12.json" --out @out
check f config-mlp-ratio refuse 'mlp_ratio' train "${TS[@]}" --model "$C/configs/mlp-ratio-1e9.json" --out @out
check f config-layers-negative refuse 'layers' train "${TS[@]}" --model "$C/configs/layers-negative.json" --out @out
check q config-layers-float refuse 'layers' train "${TS[@]}" --model "$C/configs/layers-float.json" --out @out
check f config-layers-string refuse 'layers' train "${TS[@]}" --model "$C/configs/layers-string.json" --out @out
check f config-layers-2e64 refuse 'layers' train "${TS[@]}" --model "$C/configs/layers-2e64.json" --out @out
check f config-heads-zero refuse 'heads' train "${TS[@]}" --model "$C/configs/heads-zero.json" --out @out
check f config-patch-size-zero refuse 'patch_size' train "${TS[@]}" --model "$C/configs/patch-size-zero.json" --out @out
check q config-unknown-field refuse 'colour_space' train "${TS[@]}" --model "$C/configs/unknown-field.json" --out @out
check q config-deep-nesting refuse 'deep-nesting.json' train "${TS[@]}" --model "$C/configs/deep-nesting.json" --out @out
check f config-not-json refuse 'not-json.json' train "${TS[@]}" --model "$C/configs/not-json.json" --out @out
check f config-empty refuse 'empty.json' train "${TS[@]}" --model "$C/configs/empty.json" --out @out
check q config-fifo refuse 'fifo.json' train "${TS[@]}" --model "$C/configs/fifo.json" --out @out
check f config-huge refuse 'huge.json' train "${TS[@]}" --model "$C/configs/huge.json" --out @out
# An existing path is read as a config file, whatever its name.
check f config-dev-zero refuse '/dev/zero' train "${TS[@]}" --model /dev/zero --out @out
# `flops` only counts: the right count of a huge model (GFLOPs forward and
# training, the formula of open_clip's profile worked out apart), or a
# refusal of it.
check q flops-config-width either='122400000974[0-9]\.[0-9]+ +367200002922[0-9]\.' 'width' \
    flops --model "$C/configs/vision-width-1e9.json"
check f flops-config-layers either='1745152\.[0-9]+ +5235456\.' 'layers' flops --model "$C/configs/vision-layers-1e9.json"
check f eval-config-vocab refuse 'vocab_size' eval --checkpoint "$M" --model "$C/configs/vocab-1e12.json"
check q ckpt-config-layers refuse 'layers' eval --checkpoint "$C/checkpoints/config-vision-layers-1e9.safetensors"
check f ckpt-config-text-layers refuse 'layers' eval --checkpoint "$C/checkpoints/config-text-layers-1e9.safetensors"
check f ckpt-config-vision-width refuse 'width' eval --checkpoint "$C/checkpoints/config-vision-width-1e9.safetensors"
check f ckpt-config-text-width refuse 'width' eval --checkpoint "$C/checkpoints/config-text-width-1e9.safetensors"
check f ckpt-config-vocab refuse 'vocab_size' eval --checkpoint "$C/checkpoints/config-vocab-1e12.safetensors"
check f ckpt-config-context refuse 'context_length' eval --checkpoint "$C/checkpoints/config-context-1e9.safetensors"
check f ckpt-config-image-size refuse 'image_size' eval --checkpoint "$C/checkpoints/config-image-size-1e9.safetensors"
check f ckpt-config-embed-dim refuse 'embed_dim' eval --checkpoint "$C/checkpoints/config-embed-dim-1e12.safetensors"
check q eval-image-size-80000 refuse '--image-size&&80000' eval --checkpoint "$M" --image-size 80000
# Counting FLOPs at 80000 px is no work: the right count, or a refusal by a
# size ceiling.
check q flops-image-size-80000 either='7680032102\.[0-9]+ +23040096307\.' '--image-size 80000' \
    flops --model reclip-tiny --image-size 80000
check f flops-vit-image-size-80000 either='2304427806[0-9]\.[0-9]+ +6913283420[0-9]\.' '--image-size 80000' \
    flops --model ViT-B-16 --image-size 80000
check f train-high-res-80000 refuse '--high-res&&80000' train "${TS[@]}" --high-res 80000 --out @out
# A row naming something that is not a usable image is skipped and named;
# the good rows still train.
check q csv-huge-jpeg ok 'huge-header\.jpg' train "${TS[@]}" --data "$C/with-huge-jpeg.csv" --out @out
check q csv-huge-png ok 'huge-header\.png' train "${TS[@]}" --data "$C/with-huge-png.csv" --out @out
check q csv-dev-zero ok '/dev/zero' train "${TS[@]}" --data "$C/with-dev-zero.csv" --out @out
check q csv-dev-urandom ok '/dev/urandom' train "${TS[@]}" --data "$C/with-dev-urandom.csv" --out @out
check q csv-fifo ok 'fifo\.png' train "${TS[@]}" --data "$C/with-fifo.csv" --out @out
check f csv-folder ok 'a-folder\.png' train "${TS[@]}" --data "$C/with-folder.csv" --out @out
check f csv-missing ok 'missing\.png' train "${TS[@]}" --data "$C/with-missing.csv" --out @out
check f csv-dev-zero-link ok 'dev-zero-link\.jpg' train "${TS[@]}" --data "$C/with-dev-zero-link.csv" \
    --out @out
check f data-dev-zero refuse '/dev/zero' train "${TS[@]}" --data /dev/zero --out @out
check f data-fifo refuse 'fifo.csv' train "${TS[@]}" --data "$C/fifo.csv" --out @out
check q workers-100000 refuse '--workers 100000' train "${TS[@]}" --workers 100000 --out @out
check f batch-size-1e9 refuse '--batch-size&&1000000000' train --steps 2 "${T[@]}" --batch-size 1000000000 --out @out
# A batch of nothing.
check f eval-batch-size-0 refuse '--batch-size 0' eval --checkpoint "$M" --batch-size 0
check f shard-huge-member ok 'huge-member\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/huge-member.tar" --out @out
check q shard-huge-caption ok 'huge-caption\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/huge-caption.tar" --out @out
check f shard-huge-sparse-member ok 'huge-sparse-member\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/huge-sparse-member.tar" --out @out
check q shard-truncated ok 'truncated\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/truncated.tar" --out @out
check f shard-huge-jpeg ok 'huge-jpeg\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/huge-jpeg.tar" --out @out
check q shard-fifo ok 'fifo\.tar' train "${TS[@]}" --data "$C/shards/good-0.tar::$C/shards/fifo.tar" --out @out
check f shard-fifo-only refuse 'fifo.tar' train "${TS[@]}" --data "$C/shards/fifo.tar" --out @out
check f shard-not-a-tar ok 'not-a-tar\.tar' train "${TS[@]}" \
    --data "$C/shards/good-0.tar::$C/shards/not-a-tar.tar" --out @out
check f shard-empty-only refuse 'empty.tar' train "${TS[@]}" --data "$C/shards/empty.tar" --out @out
# Streamed: broken shards are skipped while the stream goes on; counts and sizes are checked.
check q stream-bad-shards ok 'truncated\.tar' train "${TS[@]}" --data-reader stream --samples-per-epoch 8 \
    --data "$C/shards/good-0.tar::$C/shards/truncated.tar::$C/shards/not-a-tar.tar::$C/shards/fifo.tar" --out @out
check q stream-sizes-garbage refuse 'sizes-garbage/sizes.json' train "${TS[@]}" --data-reader stream \
    --data "$C/shards/sizes-garbage/good-0.tar" --out @out
check f stream-sizes-negative refuse 'sizes-negative/sizes.json&&good-0.tar' train "${TS[@]}" --data-reader stream \
    --data "$C/shards/sizes-negative/good-0.tar" --out @out
check q stream-buffer-huge refuse '--shuffle-buffer 1000000000' train "${TS[@]}" --shuffle-buffer 1000000000 \
    --data "$C/shards/good-{0..1}.tar" --out @out
check f stream-readers-huge refuse '--shard-readers 100000' train "${TS[@]}" --shard-readers 100000 \
    --data "$C/shards/good-{0..1}.tar" --out @out
check f stream-epochs-overflow refuse '--epochs' train --epochs 1000000000000 --batch-size 4 "${T[@]}" \
    --samples-per-epoch 18446744073709551615 --data "$C/shards/good-{0..1}.tar" --out @out
check f templates-huge refuse 'templates-huge.txt' eval --checkpoint "$M" "${ZS[@]}" --templates "$C/text/templates-huge.txt"
check q templates-fifo refuse 'templates-fifo.txt' eval --checkpoint "$M" "${ZS[@]}" --templates "$C/text/templates-fifo.txt"
check f templates-empty refuse 'templates-empty.txt' eval --checkpoint "$M" "${ZS[@]}" --templates "$C/text/templates-empty.txt"
# Without {} every class gets the same prompt: chance accuracy, reported as a result.
check f templates-no-braces refuse 'templates-no-braces.txt' eval --checkpoint "$M" "${ZS[@]}" \
    --templates "$C/text/templates-no-braces.txt"
check f classnames-huge refuse 'classnames-huge.txt' eval --checkpoint "$M" "${ZS[@]}" --classnames "$C/text/classnames-huge.txt"
check q classnames-fifo refuse 'classnames-fifo.txt' eval --checkpoint "$M" "${ZS[@]}" --classnames "$C/text/classnames-fifo.txt"
check f classnames-empty refuse 'classnames-empty.txt' eval --checkpoint "$M" "${ZS[@]}" \
    --classnames "$C/text/classnames-empty.txt"
# Three names for two class folders: which folder gets which name is a guess.
check f classnames-three refuse 'classnames-three.txt' eval --checkpoint "$M" "${ZS[@]}" \
    --classnames "$C/text/classnames-three.txt"
check f train-templates-fifo refuse 'templates-fifo.txt' train "${TS[@]}" --data "$C/good.csv" "${ZS[@]}" \
    --templates "$C/text/templates-fifo.txt" --out @out
check f embed-texts-dev-zero refuse '/dev/zero' embed --checkpoint "$M" --texts /dev/zero --out @out.safetensors
check f embed-texts-fifo refuse 'captions-fifo.txt' embed --checkpoint "$M" --texts "$C/text/captions-fifo.txt" \
    --out @out.safetensors
check f embed-texts-huge refuse 'templates-huge.txt' embed --checkpoint "$M" --texts "$C/text/templates-huge.txt" \
    --out @out.safetensors
check f embed-texts-empty refuse 'captions-empty.txt' embed --checkpoint "$M" --texts "$C/text/captions-empty.txt" \
    --out @out.safetensors
check q ckpt-dev-zero refuse '/dev/zero' eval --checkpoint /dev/zero
check f ckpt-fifo refuse 'fifo.safetensors' eval --checkpoint "$C/checkpoints/fifo.safetensors"
check f ckpt-folder refuse 'checkpoints' eval --checkpoint "$C/checkpoints"
check q ckpt-header-2e60 refuse 'header-2e60.safetensors' eval --checkpoint "$C/checkpoints/header-2e60.safetensors"
check f ckpt-not-json-header refuse 'not-json-header.safetensors' eval \
    --checkpoint "$C/checkpoints/not-json-header.safetensors"
check q ckpt-empty refuse 'empty.safetensors' eval --checkpoint "$C/checkpoints/empty.safetensors"
check f ckpt-truncated refuse 'truncated.safetensors' eval --checkpoint "$C/checkpoints/truncated.safetensors"
check f ckpt-tensor-beyond-file refuse 'tensor-beyond-file.safetensors' eval --model reclip-tiny \
    --checkpoint "$C/checkpoints/tensor-beyond-file.safetensors"
check q ckpt-shape-mismatch refuse 'visual.proj' eval --checkpoint "$C/checkpoints/shape-mismatch.safetensors"
check f ckpt-shape-overflow refuse 'visual.proj' eval --checkpoint "$C/checkpoints/shape-overflow.safetensors"

# --- Silent nonsense: refused, never an exit 0 with meaningless numbers.
check q lr-nan refuse '--lr NaN' train "${TS[@]}" --lr NaN --out @out
check q lr-inf refuse '--lr inf' train "${TS[@]}" --lr inf --out @out
check q lr-negative refuse '--lr -1' train "${TS[@]}" --lr=-1 --out @out
check q wd-nan refuse '--wd NaN' train "${TS[@]}" --wd nan --out @out
check q grad-clip-negative refuse '--grad-clip -1' train "${TS[@]}" --grad-clip=-1 --out @out
check q batch-size-1 refuse '--batch-size 1' train --steps 2 "${T[@]}" --batch-size 1 --out @out
check q high-below-low refuse '--low-res 32' train "${TS[@]}" --high-res 16 --low-res 32 --out @out
check q steps-with-resume refuse '--resume' train --resume "$P" --steps 10
check f epochs-with-resume refuse '--resume' train --resume "$P" --epochs 1
# Comparing the baseline with itself.
check q compare-baseline refuse '--schedule' compare "${TS[@]}" --schedule baseline --out @out
# The report prices the baseline from the probe: it needs a step.
check q probe-steps-0 refuse '--probe-steps 0' train --steps 2 --batch-size 4 --eval-every 0 --checkpoint-every 0 \
    --quiet --probe-steps 0 --out @out
# 2^32 px: 2^56 tokens, whose square overflows 64-bit counts.
check q flops-image-size-2e32 either='19140883139[0-9]{19}\.[0-9]+ +57422649417[0-9]{19}\.' '--image-size 4294967296' \
    flops --model ViT-B-16 --image-size 4294967296
check f flops-text-len-2e32 either='45334750661465[0-9]\.[0-9]+ +136004251984397[0-9]\.' '--text-len 4294967296' \
    flops --model ViT-B-16 --text-len 4294967296
check f flops-image-size-0 refuse '--image-size 0' flops --model ViT-B-16 --image-size 0
check q eval-nan-weights refuse 'visual.proj' eval --checkpoint "$C/checkpoints/nan-weights.safetensors"
check f eval-one-inf refuse 'token_embedding.weight' eval --checkpoint "$C/checkpoints/one-inf.safetensors"
check f embed-nan-weights refuse 'visual.proj' embed --checkpoint "$C/checkpoints/nan-weights.safetensors" \
    --texts "$C/text/captions.txt" --out @out.safetensors
# A loss that turns non-finite stops the run, naming the step; the last
# checkpoint it left is one from before, and evaluates.
check q lr-1e30 refuse 'step' train --steps 20 --batch-size 4 --eval-every 0 --checkpoint-every 1 --probe-steps 1 \
    --quiet --lr 1e30 --out @out
check q lr-1e30-last-checkpoint ok 'top-1' eval --checkpoint "@latest:$O/lr-1e30"
# A finetune longer than the whole run.
check f finetune-steps-beyond refuse '--finetune-steps&&1000000000' train "${TS[@]}" --finetune-steps 1000000000 --out @out
# Zero steps.
check f steps-0 refuse '--steps 0' train --steps 0 --batch-size 4 "${T[@]}" --out @out
check f text-len-above-context refuse '--text-len' train "${TS[@]}" --text-len 1000 --out @out
check f eval-text-len-huge refuse '--text-len' eval --checkpoint "$M" --text-len 1000000

# --- Data destroyed: outputs never replace inputs or earlier runs.
check q embed-out-is-checkpoint refuse '--out' embed --checkpoint "$M" --texts "$C/text/captions.txt" --out "$M"
check f embed-out-is-texts refuse '--out' embed --checkpoint "$M" --texts "$C/text/captions.txt" \
    --out "$C/text/captions.txt"
check q out-existing-run refuse '--out' train "${TS[@]}" --out "$P"
# A folder with files that are not a run's: writing into it mixes a run
# with someone's files.
check f out-not-a-run refuse '--out' train "${TS[@]}" --out "$C/not-a-run"
check q out-is-file refuse '--out' train "${TS[@]}" --out "$C/notes.txt"
check f compare-out-existing-run refuse '--out' compare "${TS[@]}" --out "$P"
# `latest` names a checkpoint that is gone: a refusal naming it, or a
# resume from the newest one there is, with a warning naming the lost one.
check f resume-bad-latest either='step-9999999' 'step-9999999' train --resume "@copy:$C/runs/bad-latest" --quiet
# A finished run has nothing left to do: its report again, or a refusal.
check f resume-finished either='report:|already|finished' '--resume' train --resume "@copy:$P" --quiet
check f resume-bad-runjson refuse 'run.json' train --resume "$C/runs/bad-runjson" --quiet
check f resume-runjson-nan-lr refuse '--lr NaN' train --resume "$C/runs/runjson-nan-lr" --quiet
check f resume-not-a-run refuse 'not-a-run' train --resume "$C/not-a-run" --quiet

# --- Data silently lost: what is skipped is named.
# Two rows are left, so a batch of two.
check q csv-unmatched-quote ok 'unmatched-quote\.csv:[0-9]' train --steps 2 --batch-size 2 "${T[@]}" \
    --data "$C/unmatched-quote.csv" --out @out
check q csv-non-utf8 ok 'non-utf8\.csv:[0-9]' train "${TS[@]}" --data "$C/non-utf8.csv" --out @out
check f csv-truncated-png ok 'truncated\.png' train "${TS[@]}" --data "$C/with-truncated-png.csv" \
    --out @out
check f csv-truncated-jpg ok 'truncated\.jpg' train "${TS[@]}" --data "$C/with-truncated-jpg.csv" \
    --out @out
check f csv-garbage-jpg ok 'garbage\.jpg' train "${TS[@]}" --data "$C/with-garbage-jpg.csv" --out @out
check f csv-empty-png ok 'empty\.png' train "${TS[@]}" --data "$C/with-empty-png.csv" --out @out
check f csv-bad-crc ok 'bad-crc\.png' train "${TS[@]}" --data "$C/with-bad-crc-png.csv" --out @out
check f csv-not-an-image ok 'not-an-image\.png' train "${TS[@]}" --data "$C/with-not-an-image.csv" \
    --out @out
# One 200 KB word: truncated to the context, not tokenized whole.
check f csv-long-caption ok 'report:' train "${TS[@]}" --data "$C/long-caption.csv" --out @out
check q eval-folder-corrupt ok 'corrupt\.png' eval --checkpoint "$M" --eval-zero-shot "$C/folders/zs-corrupt"
check f eval-folder-truncated ok 'truncated\.jpg' eval --checkpoint "$M" --eval-zero-shot "$C/folders/zs-corrupt"
check f eval-folder-huge ok 'huge-header\.jpg' eval --checkpoint "$M" --eval-zero-shot "$C/folders/zs-huge"
check f eval-folder-fifo ok 'fifo\.png' eval --checkpoint "$M" --eval-zero-shot "$C/folders/zs-fifo"
check f eval-retrieval-dev-zero ok '/dev/zero' eval --checkpoint "$M" --eval-retrieval "$C/with-dev-zero.csv"
# embed writes one row per image: a bad image is skipped and named (the
# features' image_files list says which row is which), or an error naming
# it; never a silently shorter matrix.
check q embed-huge either='huge-header\.jpg' 'huge-header.jpg' embed --checkpoint "$M" --images "$C/folders/embed-huge" \
    --out @out.safetensors
check f embed-fifo either='fifo\.png' 'fifo.png' embed --checkpoint "$M" --images "$C/folders/embed-fifo" \
    --out @out.safetensors

# --- Unclear messages: the error names the input and says what is wrong.
check q csv-header-only refuse 'header-only.csv' train "${TS[@]}" --data "$C/header-only.csv" --out @out
check f eval-retrieval-header-only refuse 'header-only.csv' eval --checkpoint "$M" --eval-retrieval "$C/header-only.csv"
check f csv-empty refuse 'empty.csv' train "${TS[@]}" --data "$C/empty.csv" --out @out
check q csv-wrong-separator refuse 'comma-separated.csv' train "${TS[@]}" --data "$C/comma-separated.csv" --out @out
check q eval-text-len-0 refuse '--text-len 0' eval --checkpoint "$M" --text-len 0
check q embed-bad-crc either='bad-crc\.png' 'bad-crc.png' embed --checkpoint "$M" --images "$C/folders/embed-bad-crc" \
    --out @out.safetensors

# --- Stopping on purpose, and going on.
check q stop-after-1 ok '' train --steps 4 --batch-size 4 "${T[@]}" --stop-after 1 --out @out
check q resume-after-stop ok 'report:' train --resume "$O/stop-after-1" --quiet
