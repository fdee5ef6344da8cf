#!/usr/bin/env python3
"""reclip against PyTorch on the CPU: `reclip speed` and open_clip's model on
PyTorch (tools/peer_openclip.py: the same model, batch, text length, steps
and thread count, fp32, AdamW, ClipLoss) run alternately, several rounds,
each side a fresh process each round; prints the median images/s of each
side per image size and their ratio.

    tools/install-peer-cpu.sh
    .peer/venv/bin/python tools/peer_cpu.py --rounds 5 --threads 2 -- \\
        --model tools/peer-cpu-model.json --image-size 32,64 --batch-size 64 --steps 10

Everything after `--` is the `reclip speed` invocation (run with
`--device cpu --precision f32 --json`); the PyTorch side gets the model,
image sizes, batch size, text length and steps that reclip's own JSON report
says it ran, defaults included. --threads sets
RAYON_NUM_THREADS for reclip and torch.set_num_threads for PyTorch (default:
the machine's cores). The rounds alternate which side goes first, so that a
slow spell of a shared machine falls on both. Prints a table, then one JSON
object; --out also writes the JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    """One line on stderr and exit 2, as reclip answers bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def refuse_set_options(argv):
    """peer_cpu.py chooses the device, precision and output format itself."""
    for arg in argv:
        name = arg.partition("=")[0]
        if name in ("--device", "--precision", "--json"):
            fail(f"{name}: peer_cpu.py sets it (the CPU, f32, JSON)")


def peer_args(report):
    """What the PyTorch side trains: what `reclip speed` reported it ran."""
    sizes = ",".join(str(row["image_size"]) for row in report["rows"])
    return ["--model", report["model"], "--image-size", sizes, "--batch-size", str(report["batch_size"])] + [
        "--text-len",
        str(report["text_len"]),
        "--steps",
        str(report["steps"]),
    ]


def run_json(cmd, env, what):
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        fail(f"{what} failed (exit {done.returncode}): {last}")
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reclip", default=os.path.join(HERE, "..", "target", "release", "reclip"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("speed", nargs=argparse.REMAINDER, help="-- then the `reclip speed` arguments")
    args = parser.parse_args()
    speed = args.speed[1:] if args.speed[:1] == ["--"] else args.speed
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    if not os.access(args.reclip, os.X_OK):
        parser.error(f"--reclip {args.reclip}: not an executable (cargo build --release builds it)")
    refuse_set_options(speed)

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    reclip_cmd = [args.reclip, "speed", *speed, "--device", "cpu", "--precision", "f32", "--json"]
    peer_cmd = [sys.executable, os.path.join(HERE, "peer_openclip.py"), "--device", "cpu", "--precision", "f32"]
    peer_cmd += ["--threads", str(args.threads)]

    rates = {"reclip": {}, "pytorch": {}}
    versions, ran = {}, None
    for round_ in range(args.rounds):
        # reclip goes first in the first round: its report says what the peer runs.
        order = ["reclip", "pytorch"] if round_ % 2 == 0 else ["pytorch", "reclip"]
        for side in order:
            if side == "reclip":
                out = run_json(reclip_cmd, env, "reclip speed")
                ran = ran or out
            else:
                out = run_json(peer_cmd + peer_args(ran), env, "tools/peer_openclip.py")
                versions = {"torch": out["torch"], "open_clip": out["open_clip"], "torch_threads": out["threads"]}
            for row in out["rows"]:
                rates[side].setdefault(row["image_size"], []).append(row["images_per_second"])
        line = ", ".join(
            f"{size} px {rates['reclip'][size][-1]:.0f}/{rates['pytorch'][size][-1]:.0f}" for size in rates["reclip"]
        )
        print(f"round {round_ + 1}/{args.rounds}: reclip/PyTorch images/s {line}", file=sys.stderr)

    rows = []
    for size, reclip_rates in rates["reclip"].items():
        ours, theirs = statistics.median(reclip_rates), statistics.median(rates["pytorch"][size])
        rows.append(
            {
                "image_size": size,
                "reclip_images_per_second": ours,
                "pytorch_images_per_second": theirs,
                "ratio": ours / theirs,
                "reclip_rounds": reclip_rates,
                "pytorch_rounds": rates["pytorch"][size],
            }
        )
    report = {
        "speed_args": speed,
        "peer_args": peer_args(ran),
        "threads": args.threads,
        "rounds": args.rounds,
        "cpu": cpu_name(),
        **versions,
        "rows": rows,
    }
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(args.out + ".tmp", args.out)
    print(f"{ran['model']}, batch {ran['batch_size']}, {args.threads} threads, {args.rounds} rounds (medians)")
    print(f"{'size':>6} {'reclip img/s':>13} {'PyTorch img/s':>14} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['image_size']:>6} {r['reclip_images_per_second']:>13.1f} "
            f"{r['pytorch_images_per_second']:>14.1f} {r['ratio']:>6.2f}x"
        )
    print(json.dumps(report, indent=2))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
