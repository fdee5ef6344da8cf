#!/usr/bin/env python3
"""The PyTorch peer of `reclip speed`: open_clip's own model trained the way
open_clip_train trains it, on the inputs `reclip speed` uses, so that the two
images/s figures compare like with like.

- the model: open_clip.create_model(NAME, pretrained=None), random weights,
  fp32 master weights under bf16 autocast (open_clip_train's amp_bf16), with
  open_clip's attention (nn.MultiheadAttention, which calls PyTorch's fused
  scaled-dot-product attention);
- the step: open_clip's ClipLoss, backward, gradient clipping at norm 1.0,
  AdamW with open_clip_train's betas (0.9, 0.98), eps 1e-6, weight decay 0.2
  (none on gains, biases and logit_scale), then logit_scale clamped to
  log(100), as open_clip_train does;
- the inputs: normal random images and random token ids with an EOT (49407,
  the largest id, where open_clip's argmax pooling reads) at a random place,
  uploaded from pinned host memory at every step.

Timed like a training loop: warm-up steps, then one synchronize around the
timed steps (no synchronize between them, as open_clip_train runs).

    python3 tools/peer_openclip.py --image-size 64,112,224 --batch-size 256

prints one JSON object: {"rows": [{"image_size", "images_per_second",
"step_ms", "peak_memory_gib"}], "torch", "open_clip", "device", ...}.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import torch
import open_clip

EOT = 49407
SOT = 49406

# reclip's own small models (crates/reclip-model/src/config/presets.rs) in
# open_clip's config format, so that a CPU rehearsal can run the same model as
# `reclip speed --model reclip-tiny`.
RECLIP_PRESETS = {
    "reclip-tiny": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 80, "patch_size": 8, "width": 64, "layers": 3, "head_width": 32, "mlp_ratio": 4.0},
        "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "reclip-small": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 128, "layers": 4, "head_width": 32, "mlp_ratio": 4.0},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
    },
}


def register_model(name):
    """open_clip finds configs only in files: write reclip's preset to one, or
    register an open_clip JSON config (which `reclip --model` also takes)
    under its file's stem. Returns the name open_clip knows it by."""
    if name.endswith(".json"):
        open_clip.add_model_config(name)
        return os.path.splitext(os.path.basename(name))[0]
    if name in RECLIP_PRESETS:
        folder = tempfile.mkdtemp(prefix="peer-openclip-")
        path = os.path.join(folder, f"{name}.json")
        with open(path, "w") as f:
            json.dump(RECLIP_PRESETS[name], f)
        open_clip.add_model_config(path)
    return name


def decays(name, param):
    """open_clip_train's rule for which parameters get weight decay."""
    return not (param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name)


def random_batch(batch, size, text_len, device, gen):
    """On the host, pinned where there is a GPU, as open_clip_train's loader
    hands it over: each step uploads it, as it does in training and in
    `reclip speed`."""
    images = torch.randn(batch, 3, size, size, generator=gen)
    ids = torch.randint(1, SOT, (batch, text_len), generator=gen)
    ids[:, 0] = SOT
    eot_at = torch.randint(1, text_len, (batch,), generator=gen)
    columns = torch.arange(text_len).expand(batch, text_len)
    ids[columns > eot_at[:, None]] = 0
    ids[torch.arange(batch), eot_at] = EOT
    if device.type == "cuda":
        return images.pin_memory(), ids.pin_memory()
    return images, ids


def measure(args, size, device):
    model = open_clip.create_model(args.model, pretrained=None, precision="amp_bf16", device=device, force_image_size=size)
    model.train()
    text_len = args.text_len or model.context_length
    params = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not decays(n, p) and p.requires_grad], "weight_decay": 0.0},
            {"params": [p for n, p in params if decays(n, p) and p.requires_grad], "weight_decay": 0.2},
        ],
        lr=1e-4,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    loss_fn = open_clip.ClipLoss()
    images, ids = random_batch(args.batch_size, size, text_len, device, torch.Generator().manual_seed(size))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            image_features, text_features, logit_scale = model(
                images.to(device, non_blocking=True), ids.to(device, non_blocking=True)
            )
            loss = loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type=2.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return loss

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        loss = step()
    synchronize()
    if not math.isfinite(loss.item()):
        raise SystemExit(f"image size {size}: the loss is {loss.item()} after the warm-up steps")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    seconds = time.perf_counter() - t0
    row = {
        "image_size": size,
        "images_per_second": args.steps * args.batch_size / seconds,
        "step_ms": 1e3 * seconds / args.steps,
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row, text_len


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="ViT-B-16", help="an open_clip model name or JSON config, or one of " + ", ".join(RECLIP_PRESETS)
    )
    parser.add_argument("--image-size", default="64,112,224", help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--text-len", type=int, help="default: the model's context length")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--precision", default="bf16", choices=("bf16", "f32"), help="bf16: autocast over fp32 weights")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own choice)")
    parser.add_argument("--out", help="also write the JSON here, after each size, so that a killed run keeps what it measured")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU")
    device = torch.device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    # open_clip_train turns TF32 on for whatever autocast leaves in fp32.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model_name = args.model
    args.model = register_model(args.model)

    report = {
        "model": model_name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision,
        "batch_size": args.batch_size,
        "text_len": args.text_len,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "threads": torch.get_num_threads(),
        "rows": [],
    }
    for size in (int(s) for s in args.image_size.split(",")):
        row, report["text_len"] = measure(args, size, device)
        report["rows"].append(row)
        print(f"{args.model} {size} px: {row['images_per_second']:.1f} images/s, {row['step_ms']:.1f} ms/step", file=sys.stderr)
        if args.out:
            with open(args.out + ".tmp", "w") as f:
                json.dump(report, f, indent=2)
            os.replace(args.out + ".tmp", args.out)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
