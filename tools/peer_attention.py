#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at the shapes of reclip's attention
bench (benches/attention.rs), for tools/gpu-check.sh's peer stage: head width
64, batch = ceil(1024 / heads), sequences of 17, 50, 77 (causal) and 197
tokens, bf16. TFLOP/s count the products densely as the bench does:
4·B·H·L²·d for the forward, 10·B·H·L²·d for the backward.

Prints a table and writes --out as JSON ({"rows": [...], "torch": ..., "device": ...}).
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

CASES = [("vit_b16_64px_L17", 17, 12, False), ("vit_b32_224px_L50", 50, 12, False),
         ("text_L77_causal", 77, 8, True), ("vit_b16_224px_L197", 197, 12, False)]
HEAD_WIDTH = 64


def timed(fn, device, iters):
    """Seconds per call of fn, after two warm-up calls."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = []
    for name, length, heads, causal in CASES:
        batch = math.ceil(1024 / heads)
        gen = torch.Generator(device=device).manual_seed(length)
        q, k, v = (torch.randn(batch, heads, length, HEAD_WIDTH, device=device, dtype=dtype, generator=gen,
                               requires_grad=True) for _ in range(3))
        d_out = torch.randn(batch, heads, length, HEAD_WIDTH, device=device, dtype=dtype, generator=gen)
        flops = batch * heads * length * length * HEAD_WIDTH

        def forward():
            with torch.no_grad():
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        def backward():
            return torch.autograd.grad(out, (q, k, v), d_out, retain_graph=True)

        fwd_s, bwd_s = timed(forward, device, args.iters), timed(backward, device, args.iters)
        rows.append({"case": name, "len": length, "heads": heads, "batch": batch, "causal": causal,
                     "forward_us": 1e6 * fwd_s, "backward_us": 1e6 * bwd_s,
                     "forward_tflops": 4 * flops / fwd_s / 1e12, "backward_tflops": 10 * flops / bwd_s / 1e12})
        result = {"rows": rows, "torch": torch.__version__, "dtype": str(dtype),
                  "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(f"{'case':<20} {'fwd µs':>9} {'fwd TFLOP/s':>12} {'bwd µs':>9} {'bwd TFLOP/s':>12}")
    for r in rows:
        print(f"{r['case']:<20} {r['forward_us']:>9.1f} {r['forward_tflops']:>12.1f} "
              f"{r['backward_us']:>9.1f} {r['backward_tflops']:>12.1f}")


if __name__ == "__main__":
    main()
