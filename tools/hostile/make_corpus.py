#!/usr/bin/env python3
"""Writes the hostile-input corpus for tools/hostile-inputs.sh.

    make_corpus.py OUTDIR [--model MODEL.safetensors] [--run RUN_DIR]

OUTDIR gets a small valid dataset (PNG and JPEG images, a CSV list, tar
shards, an ImageFolder, a model config) and, beside it, files that lie,
loop, never end or ask for unbounded work: images whose headers claim
65500x65500 or 100000x100000 pixels, truncated and corrupt images, CSV rows
naming /dev/zero, /dev/urandom, a FIFO or a folder, malformed lists, tar
members claiming a petabyte, model configs with 10^9 layers, checkpoints
with NaN weights or lying headers, FIFOs and 8 GiB sparse files where text
files are expected. With --model (a reclip checkpoint) it also writes
checkpoints derived from it; with --run (a finished `reclip train` folder)
copies of that run with a broken `latest` pointer or run.json.

Standard library only: the corpus must be reproducible anywhere CI runs.
"""

import argparse
import json
import os
import shutil
import zlib
from pathlib import Path

from archives import (
    tar_member_header,
    tar_members,
    tar_shard,
    with_header_edit,
    with_model_config,
    with_tensor_filled,
    write_safetensors,
)
from imagefiles import jpeg, png, png_from_parts, png_with_bad_crc

# The eight colours of the good images and their captions.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "purple": (140, 40, 170),
    "orange": (240, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
BACKGROUND = (128, 128, 128)

# Big enough that reading one whole does not fit the runner's memory cap
# (4 GiB by default); sparse, so it costs no disk.
SPARSE_SIZE = 8 << 30

# Where the lying headers point: far beyond any image reclip could use.
JPEG_CLAIM = (65500, 65500)
PNG_CLAIM = 100000
PETABYTE = 1 << 50


def square(colour):
    """pixel(x, y) of a 32x32 image: a coloured square on grey."""

    def pixel(x, y):
        return colour if 8 <= x < 24 and 8 <= y < 24 else BACKGROUND

    return pixel


def good_image(index: int, name: str):
    """(file name, bytes, caption) of good image `index`: PNG in RGB, grey
    or RGBA, or JPEG in colour or grey, so every decoder path is met."""
    colour = COLOURS[name]
    pixel = square(colour)
    caption = f"a photo of a {name} square."
    kind = index % 5
    if kind == 0:
        return f"good-{index}.png", png(32, 32, pixel), caption
    if kind == 1:
        return f"good-{index}.png", png(32, 32, lambda x, y: pixel(x, y)[:1], colour_type=0), caption
    if kind == 2:
        return f"good-{index}.png", png(32, 32, lambda x, y: (*pixel(x, y), 255), colour_type=6), caption
    if kind == 3:
        return f"good-{index}.jpg", jpeg(32, 32, pixel), caption
    return f"good-{index}.jpg", jpeg(32, 32, pixel, grayscale=True), caption


def write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def fifo(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def sparse(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(SPARSE_SIZE)


def tsv(rows, separator="\t") -> bytes:
    """A list with open_clip's header (`filepath`, `title`)."""
    lines = [f"filepath{separator}title"] + [f"{path}{separator}{caption}" for path, caption in rows]
    return ("\n".join(lines) + "\n").encode()


def hostile_images(root: Path):
    """images/: files that look like images and are not, or lie."""
    images = root / "images"
    good_png = png(32, 32, square(COLOURS["red"]))
    good_jpg = jpeg(32, 32, square(COLOURS["blue"]))
    write(images / "huge-header.jpg", jpeg(16, 16, square(COLOURS["red"]), claim=JPEG_CLAIM))
    # IHDR claims 100000x100000 RGB; the data is one short row's worth.
    write(images / "huge-header.png", png_from_parts(PNG_CLAIM, PNG_CLAIM, 2, zlib.compress(b"\0" * 301)))
    write(images / "truncated.png", good_png[: len(good_png) // 2])
    write(images / "truncated.jpg", good_jpg[: len(good_jpg) * 2 // 3])
    write(images / "garbage.jpg", b"\xff\xd8\xff" + bytes((i * 37 + 11) % 256 for i in range(600)))
    write(images / "empty.png", b"")
    write(images / "bad-crc.png", png_with_bad_crc(good_png))
    write(images / "not-an-image.png", b"this is a caption, not an image\n")
    fifo(images / "fifo.png")
    (images / "a-folder.png").mkdir()
    os.symlink("/dev/zero", images / "dev-zero-link.jpg")


# The row each with-*.csv list adds to the good rows: (path, what it is).
HOSTILE_ROWS = {
    "huge-jpeg": "images/huge-header.jpg",
    "huge-png": "images/huge-header.png",
    "truncated-png": "images/truncated.png",
    "truncated-jpg": "images/truncated.jpg",
    "garbage-jpg": "images/garbage.jpg",
    "empty-png": "images/empty.png",
    "bad-crc-png": "images/bad-crc.png",
    "not-an-image": "images/not-an-image.png",
    "dev-zero": "/dev/zero",
    "dev-urandom": "/dev/urandom",
    "fifo": "images/fifo.png",
    "folder": "images/a-folder.png",
    "missing": "images/missing.png",
    "dev-zero-link": "images/dev-zero-link.jpg",
}


def lists(root: Path, good_rows):
    """The CSV/TSV lists (tab-separated, paths relative to the list's folder)."""
    write(root / "good.csv", tsv(good_rows))
    for kind, path in HOSTILE_ROWS.items():
        rows = good_rows[:4] + [(path, "a photo of a hostile file.")] + good_rows[4:]
        write(root / f"with-{kind}.csv", tsv(rows))
    # Row 3's caption opens a quote that nothing closes (a field that starts
    # with `"` is quoted, as pandas reads it): rows 3 to 8 read as one field.
    quoted = list(good_rows)
    quoted[2] = (quoted[2][0], '"a red square.')
    write(root / "unmatched-quote.csv", tsv(quoted))
    write(root / "header-only.csv", tsv([]))
    write(root / "comma-separated.csv", tsv(good_rows, separator=","))
    non_utf8 = tsv(good_rows) + b"images/good-0.png\ta caf\xe9 au lait\n" + b"images/\xff\xfe.png\ta photo.\n"
    write(root / "non-utf8.csv", non_utf8)
    write(root / "empty.csv", b"")
    # One 200 KB word: a tokenizer that merges byte pairs over the whole
    # word before truncating does quadratic work.
    write(root / "long-caption.csv", tsv(good_rows + [(good_rows[0][0], "a" * 200_000)]))
    fifo(root / "fifo.csv")


def shards(root: Path, good_members):
    """shards/: WebDataset tar files, good and broken."""
    d = root / "shards"

    def members(items):
        out = []
        for key, (name, data, caption) in items:
            out += [(f"{key:06d}.{name.rsplit('.', 1)[1]}", data), (f"{key:06d}.txt", caption.encode())]
        return out

    first, second = members(enumerate(good_members[:4])), members(enumerate(good_members[4:], start=4))
    write(d / "good-0.tar", tar_shard(first))
    write(d / "good-1.tar", tar_shard(second))
    whole = tar_shard(second)
    write(d / "truncated.tar", whole[: len(whole) * 5 // 8])
    # A good sample, then a member whose header claims a petabyte and whose
    # data ends a few hundred bytes on.
    valid = tar_members(first[:2])
    write(d / "huge-member.tar", valid + tar_member_header("000001.png", PETABYTE) + b"\x89PNG" * 128)
    write(
        d / "huge-caption.tar",
        valid + tar_members(first[2:3]) + tar_member_header("000001.txt", PETABYTE) + b"a photo " * 64,
    )
    # A member whose 8 GiB of data are really there (a sparse file): no lie,
    # and still no image a reader should take whole into memory.
    with open(d / "huge-sparse-member.tar", "wb") as f:
        f.write(valid + tar_member_header("000001.png", SPARSE_SIZE))
        f.seek(SPARSE_SIZE, os.SEEK_CUR)
        f.write(tar_shard([("000001.txt", b"a photo of nothing.")]))
    huge_jpeg = (root / "images" / "huge-header.jpg").read_bytes()
    write(d / "huge-jpeg.tar", tar_shard(first[:2] + [("000009.jpg", huge_jpeg), ("000009.txt", b"a photo.")]))
    write(d / "not-a-tar.tar", b"this is not a tar file\n" * 40)
    write(d / "empty.tar", b"")
    fifo(d / "fifo.tar")
    # Streamed shards take their counts from open_clip's sizes.json beside them.
    for name, sizes in [("sizes-garbage", b"not json"), ("sizes-negative", b'{"good-0.tar": -4}')]:
        write(d / name / "good-0.tar", tar_shard(first))
        write(d / name / "sizes.json", sizes)


# reclip-tiny, written out: the base every hostile config edits one field of.
TINY = {
    "embed_dim": 64,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 32, "mlp_ratio": 4.0, "patch_size": 8},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 4.0},
}

# (file name, section or None for the top level, field, value).
CONFIG_EDITS = [
    ("vision-layers-1e9", "vision_cfg", "layers", 10**9),
    ("text-layers-1e9", "text_cfg", "layers", 10**9),
    ("vision-width-1e9", "vision_cfg", "width", 10**9),
    ("text-width-1e9", "text_cfg", "width", 10**9),
    ("vocab-1e12", "text_cfg", "vocab_size", 10**12),
    ("context-1e9", "text_cfg", "context_length", 10**9),
    ("image-size-1e9", "vision_cfg", "image_size", 10**9),
    ("embed-dim-1e12", None, "embed_dim", 10**12),
    ("mlp-ratio-1e9", "vision_cfg", "mlp_ratio", 1e9),
    ("layers-negative", "vision_cfg", "layers", -1),
    ("layers-float", "vision_cfg", "layers", 2.5),
    ("layers-string", "vision_cfg", "layers", "3"),
    ("layers-2e64", "vision_cfg", "layers", 2**64),
    ("heads-zero", "text_cfg", "heads", 0),
    ("patch-size-zero", "vision_cfg", "patch_size", 0),
    ("unknown-field", "vision_cfg", "colour_space", "srgb"),
]


def edited(config, section, field, value):
    config = json.loads(json.dumps(config))
    (config[section] if section else config)[field] = value
    return config


def configs(root: Path):
    """configs/: open_clip-style model configs, one field hostile in each."""
    d = root / "configs"
    write(d / "good.json", json.dumps(TINY, indent=2).encode())
    for name, section, field, value in CONFIG_EDITS:
        write(d / f"{name}.json", json.dumps(edited(TINY, section, field, value)).encode())
    depth = 100_000
    write(d / "deep-nesting.json", b'{"embed_dim": 64, "vision_cfg": ' + b"[" * depth + b"]" * depth + b"}")
    write(d / "not-json.json", b'{"embed_dim": 64, "vision_cfg": {')
    write(d / "empty.json", b"")
    fifo(d / "fifo.json")
    sparse(d / "huge.json")


def checkpoints(root: Path, model: Path):
    """checkpoints/: safetensors files, each wrong in one way."""
    d = root / "checkpoints"
    write(d / "header-2e60.safetensors", (1 << 60).to_bytes(8, "little") + b'{"a":1} ')
    write(d / "not-json-header.safetensors", (16).to_bytes(8, "little") + b"not json at all!" + b"\0" * 64)
    write(d / "empty.safetensors", b"")
    fifo(d / "fifo.safetensors")
    write(d / "tensor-beyond-file.safetensors", write_safetensors(
        {"visual.proj": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 16384]}}, b"\0" * 64))
    if model is None:
        return
    good = model.read_bytes()
    write(root / "model.safetensors", good)
    write(d / "nan-weights.safetensors", with_tensor_filled(good, "visual.proj", float("nan")))
    write(d / "one-inf.safetensors", with_tensor_filled(good, "token_embedding.weight", float("inf"), count=1))
    write(d / "truncated.safetensors", good[: len(good) // 2])

    def set_shape(shape):
        def edit(header):
            header["visual.proj"]["shape"] = shape

        return edit

    write(d / "shape-mismatch.safetensors", with_header_edit(good, set_shape([64, 65])))
    write(d / "shape-overflow.safetensors", with_header_edit(good, set_shape([1 << 62, 1 << 62, 4])))
    for name, section, field, value in CONFIG_EDITS[:8]:
        write(
            d / f"config-{name}.safetensors",
            with_model_config(good, lambda c, s=section, f=field, v=value: (c[s] if s else c).__setitem__(f, v)),
        )


def folders(root: Path):
    """folders/: ImageFolders for zero-shot, folders of images for embed."""
    d = root / "folders"
    hostile = root / "images"
    classes = {"red_square": COLOURS["red"], "blue_square": COLOURS["blue"]}
    for variant in ["zs-good", "zs-corrupt", "zs-huge", "zs-fifo", "embed-good", "embed-bad-crc", "embed-fifo", "embed-huge"]:
        for name, colour in classes.items():
            base = d / variant / name if variant.startswith("zs-") else d / variant
            write(base / f"{name}-a.png", png(32, 32, square(colour)))
            write(base / f"{name}-b.jpg", jpeg(32, 32, square(colour)))
    shutil.copy(hostile / "bad-crc.png", d / "zs-corrupt" / "red_square" / "corrupt.png")
    shutil.copy(hostile / "truncated.jpg", d / "zs-corrupt" / "blue_square" / "truncated.jpg")
    shutil.copy(hostile / "huge-header.jpg", d / "zs-huge" / "red_square" / "huge-header.jpg")
    fifo(d / "zs-fifo" / "red_square" / "fifo.png")
    shutil.copy(hostile / "bad-crc.png", d / "embed-bad-crc" / "bad-crc.png")
    fifo(d / "embed-fifo" / "fifo.png")
    shutil.copy(hostile / "huge-header.jpg", d / "embed-huge" / "huge-header.jpg")


def texts(root: Path):
    """text/: templates, class names and captions, good and hostile."""
    d = root / "text"
    write(d / "templates.txt", b"a photo of a {}.\nan image of a {}.\n")
    write(d / "templates-empty.txt", b"")
    write(d / "templates-no-braces.txt", b"a photo.\n")
    fifo(d / "templates-fifo.txt")
    sparse(d / "templates-huge.txt")
    write(d / "classnames.txt", b"red square\nblue square\n")
    write(d / "classnames-three.txt", b"red square\nblue square\ngreen square\n")
    write(d / "classnames-empty.txt", b"")
    fifo(d / "classnames-fifo.txt")
    sparse(d / "classnames-huge.txt")
    write(d / "captions.txt", b"a photo of a red square.\na photo of a blue square.\n")
    write(d / "captions-empty.txt", b"")
    fifo(d / "captions-fifo.txt")


def runs(root: Path, run: Path):
    """runs/: copies of a finished run, each broken in one way, for --resume."""
    d = root / "runs"
    bad_latest = d / "bad-latest"
    shutil.copytree(run, bad_latest)
    (bad_latest / "checkpoints" / "latest").write_text("step-9999999")
    for name, text in [
        ("bad-runjson", '{"args": 5}'),
        ("runjson-nan-lr", json.dumps({"args": ["train", "--lr", "NaN", "--quiet"]})),
    ]:
        write(d / name / "run.json", text.encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--model", type=Path, help="a reclip checkpoint to derive hostile checkpoints from")
    parser.add_argument("--run", type=Path, help="a finished `reclip train` folder to derive broken runs from")
    args = parser.parse_args()
    root = args.outdir
    root.mkdir(parents=True, exist_ok=True)
    good = [good_image(i, name) for i, name in enumerate(COLOURS)]
    for name, data, _ in good:
        write(root / "images" / name, data)
    hostile_images(root)
    lists(root, [(f"images/{name}", caption) for name, _, caption in good])
    shards(root, good)
    configs(root)
    checkpoints(root, args.model)
    folders(root)
    texts(root)
    if args.run:
        runs(root, args.run)
    write(root / "notes.txt", b"a file that is not a folder: --out must not replace it\n")
    write(root / "not-a-run" / "keep.txt", b"a folder that is not a run: --out must not write into it\n")


if __name__ == "__main__":
    main()
