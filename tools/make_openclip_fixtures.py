"""Writes reference fixtures computed by open_clip (the Python CLIP library) for reclip's tests.

How to run it, from the repository root (the environment lives outside the repository):

    python3 -m venv /tmp/reclip-fixtures-venv
    /tmp/reclip-fixtures-venv/bin/pip install -r tools/requirements-fixtures.txt
    /tmp/reclip-fixtures-venv/bin/python tools/make_openclip_fixtures.py

It writes tests/fixtures/open_clip/ and overwrites what is there. Everything runs on the CPU with
fixed seeds and one thread, so a re-run with the pinned versions on the same kind of CPU rewrites the
files byte for byte (float results may differ in the last bits on another CPU's vector units).

Files (each .safetensors but the model weights has a .json sidecar saying what its tensors are; the
weights carry open_clip's own names, and model_<name>.json is the model's config):
- tokenizer.json: captions and open_clip's token ids at context lengths 77 and 16.
- model_<name>.json / model_<name>.safetensors: a tiny random CLIP's config (open_clip's schema) and
  its state dict, for <name> in tiny_gelu, tiny_quickgelu.
- io_<name>.safetensors (+ .json): inputs and outputs of that model, also at a second image size and
  with patch dropout.
- pos_embed_resize.safetensors (+ .json): open_clip's resize_pos_embed on random embeddings.
- clip_loss.safetensors (+ .json): open_clip's ClipLoss and its gradients.
- patch_dropout.safetensors (+ .json): open_clip's PatchDropout in training, the patches it kept, and the
  gradient through it.
- siglip_loss.safetensors (+ .json): open_clip's SigLipLoss (one rank, and the negatives-only block a rank
  adds for another rank's texts) and its gradients.
"""

import copy
import json
import math
import tempfile
import types
from pathlib import Path

import numpy as np
import open_clip
import safetensors.torch
import torch
import torch.nn.functional as F
from open_clip.model import resize_pos_embed

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "open_clip"

VERSIONS = {"open_clip": open_clip.__version__, "torch": torch.__version__, "numpy": np.__version__}

CAPTIONS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "Hello, world! How's it going?",
    "I'm sure they'll say we'd've done it; you're right, it's theirs.",
    "THE DOG'S BALL ISN'T RED",
    "There are 12 apples, 3.5 kg of flour and 1,000,000 grains of rice in 2023.",
    "Café crème brûlée à la française",
    "Cafe\u0301 cre\u0300me (decomposed accents)",
    "東京タワーの夜景",
    "一只在草地上奔跑的小狗",
    "서울의 밤거리",
    "Привет, мир! Москва",
    "Ελληνικά: ΟΔΥΣΣΕΥΣ ΚΑΙ ΣΟΦΙΑ",
    "مرحبا بالعالم",
    "a dog 🐶 playing with a ball ⚽️ at the beach 🏖️",
    "family: 👨\u200d👩\u200d👧\u200d👦 and flags 🇯🇵🇫🇷",
    "Tom &amp; Jerry",
    "it&#39;s a &lt;b&gt;bold&lt;/b&gt; move",
    "double escaped: &amp;amp; and &amp;lt;tag&amp;gt;",
    "triple escaped: &amp;amp;amp; and &amp;amp;lt;",
    "&lt;i&gt; next to a literal < sign: &amp;amp;amp;",
    "&quot;quoted&quot; &copy; 2020 &eacute;t&eacute; &hellip;",
    "numeric: &#x41;&#66;&#x1F600; and without semicolons &amp &lt3 3 &times 4",
    "references: &#128; &#x92; &#1;x &#0; &#9;tab &notit; &nbsp;end &#12ab;",
    "P&EACUTE;REZ &SZLIG; &AMP; this&not that &ampamp;",
    "first &amp;amp;amp; line\nsecond <tag> &amp;amp;amp; line\nthird &amp;amp;amp; line",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand   multiple     spaces",
    "non-breaking\u00a0space, em\u2003space and ideographic\u3000space",
    "",
    "   \t\n  ",
    "!!!???...,,,;;; -- ** ##",
    "email@example.com https://example.com/path?q=1&x=2#frag",
    "snake_case and kebab-case and CamelCaseWords",
    "\u201cCurly quotes\u201d and \u2018single\u2019 ones: the dog\u2019s bone",
    "\ufb01ne \ufb02owers in the o\ufb03ce",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "bell\x07char, null\x00char and del\x7fchar",
    "\x1b[31mred terminal text\x1b[0m",
    "The Ã©clair at the cafÃ© costs â‚¬5",
    "C1 controls: price \x80 5, \x93quoted\x94, \x85 and undefined \x81",
    "<start_of_text>literal special tokens<end_of_text>",
    "x² + y³ = z½ ① Ⅻ",
    "İstanbul ŞEHİR and Straße STRASSE ẞ",
    "zero\u200bwidth space and soft\u00adhyphen",
    "donaudampfschifffahrtsgesellschaftskapitänsmütze",
    " ".join(["cat"] * 14),
    " ".join(["cat"] * 15),
    "A golden retriever puppy chasing a red frisbee across a sunny park while children laugh",
    " ".join(
        [
            "A very long caption that describes an extremely detailed scene, with many objects:",
            "a wooden table, three ceramic cups, a teapot with blue flowers, an open book, reading",
            "glasses, a vase of tulips, sunlight through the window, a sleeping cat on the chair,",
            "a bicycle outside, mountains in the distance, and clouds drifting over the lake;",
            "it keeps going well past seventy-seven tokens so that truncation has to happen.",
        ]
    ),
]

CONTEXT_LENGTHS = [77, 16]


def to_json(obj, indent=""):
    # Like json.dumps(indent=1), but lists of numbers stay on one line so token rows and shapes read as rows.
    inner = indent + " "
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {to_json(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and obj and not all(isinstance(x, (int, float)) for x in obj):
        return "[\n" + ",\n".join(inner + to_json(x, inner) for x in obj) + "\n" + indent + "]"
    if isinstance(obj, str):
        return "".join(c if c.isprintable() else escape_utf16(c) for c in json.dumps(obj, ensure_ascii=False))
    return json.dumps(obj, ensure_ascii=False)


def escape_utf16(c):
    # Invisible characters (C1 controls, zero-width joiners, soft hyphens) as JSON escapes, so that a
    # reader of the fixture sees them.
    units = c.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def write_json(path, obj):
    path.write_text(to_json(obj) + "\n", encoding="utf-8")


def save_tensors(path, tensors):
    contiguous = {name: t.detach().contiguous() for name, t in tensors.items()}
    # No metadata: safetensors writes its map in no fixed order, which would break byte-identical re-runs.
    safetensors.torch.save_file(contiguous, str(path))


def describe(tensors, meanings):
    assert set(tensors) == set(meanings), set(tensors) ^ set(meanings)
    return {
        name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "meaning": meanings[name]}
        for name, t in tensors.items()
    }


def add_entries(tensors, meanings, key, entries):
    """Adds `entries` (name: (tensor, meaning)) to a fixture's tensors and meanings as `key.name`."""
    for name, (t, meaning) in entries.items():
        tensors[f"{key}.{name}"] = t
        meanings[f"{key}.{name}"] = meaning


def save_keyed_fixture(stem, tensors, meanings, computation):
    """Writes <stem>.safetensors and <stem>.json (versions, how it was computed, what each tensor is)."""
    save_tensors(OUT / f"{stem}.safetensors", tensors)
    write_json(
        OUT / f"{stem}.json",
        {"versions": VERSIONS, "computation": computation, "tensors": describe(tensors, meanings)},
    )


def make_tokenizer_fixture():
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    cases = []
    for text in CAPTIONS:
        tokens = {str(n): tokenizer([text], context_length=n)[0].tolist() for n in CONTEXT_LENGTHS}
        cases.append({"text": text, "cleaned": tokenizer.clean_fn(text), "tokens": tokens})
    write_json(
        OUT / "tokenizer.json",
        {
            "versions": VERSIONS,
            "tokenizer": "open_clip.get_tokenizer('ViT-B-32'): SimpleTokenizer, clean='lower'",
            "cleaned": "tokenizer.clean_fn(text): ftfy.fix_text, html.unescape twice, whitespace collapse, "
            "strip, lower(); the text that the BPE sees",
            "tokens": "tokenizer([text], context_length=n)[0]: [sot] + bpe + [eot], cut to n keeping eot last, "
            "padded with 0",
            "sot": tokenizer.sot_token_id,
            "eot": tokenizer.eot_token_id,
            "vocab_size": tokenizer.vocab_size,
            "context_lengths": CONTEXT_LENGTHS,
            "cases": cases,
        },
    )


# The second model varies every size, so that a reimplementation that hard-codes one of them fails.
# Head widths are 32: reclip's GPU attention kernels exist for head widths 32, 64 and 128, and the
# same models are checked on the kernel test device.
MODEL_CONFIGS = {
    "tiny_gelu": {
        "embed_dim": 16,
        "quick_gelu": False,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 4.0},
        "text_cfg": {"context_length": 16, "vocab_size": 512, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 4.0},
    },
    "tiny_quickgelu": {
        "embed_dim": 12,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 32, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 16, "vocab_size": 512, "width": 96, "heads": 3, "layers": 1, "mlp_ratio": 2.0},
    },
}

# Token ids of the tiny models: the text feature is read at the argmax of each row, so the end token
# must be the largest id; 510 and 511 stand in for open_clip's 49406 and 49407.
TINY_SOT, TINY_EOT = 510, 511
TINY_EOT_POSITIONS = [15, 2, 7, 11, 4]
SECOND_IMAGE_SIZE = 48


def tiny_token_ids(generator):
    rows = []
    for eot_pos in TINY_EOT_POSITIONS:
        row = torch.zeros(16, dtype=torch.long)
        row[0] = TINY_SOT
        row[1:eot_pos] = torch.randint(1, TINY_SOT, (eot_pos - 1,), generator=generator)
        row[eot_pos] = TINY_EOT
        rows.append(row)
    return torch.stack(rows)


def perturb_all_parameters(model, generator):
    # Default init leaves LayerNorm at (1, 0), biases at 0 and logit_scale at log(1/0.07): a
    # reimplementation that forgot to load one of them would still pass. Noise on every parameter
    # makes each one matter.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


def make_model_fixture(name, config, config_dir):
    config_path = config_dir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)

    torch.manual_seed(1234)
    model = open_clip.create_model(name)
    generator = torch.Generator().manual_seed(4321)
    perturb_all_parameters(model, generator)
    model.eval()

    write_json(OUT / f"model_{name}.json", config)
    state_dict = model.state_dict()
    safetensors.torch.save_file(state_dict, str(OUT / f"model_{name}.safetensors"))

    image_size = config["vision_cfg"]["image_size"]
    images = torch.randn(3, 3, image_size, image_size, generator=generator)
    text = tiny_token_ids(generator)
    images_big = torch.randn(1, 3, SECOND_IMAGE_SIZE, SECOND_IMAGE_SIZE, generator=generator)

    model_big = open_clip.create_model(name, force_image_size=SECOND_IMAGE_SIZE)
    resized = copy.deepcopy(state_dict)
    resize_pos_embed(resized, model_big)
    model_big.load_state_dict(resized)
    model_big.eval()

    with torch.no_grad():
        image_features = model.encode_image(images, normalize=False)
        text_features = model.encode_text(text, normalize=False)
        logits_per_image, logits_per_text = model.get_logits(images, text)
        image_features_big = model_big.encode_image(images_big, normalize=False)
    assert torch.equal(logits_per_text, logits_per_image.T)
    image_features_dropped, kept = encode_with_patch_dropout(model, images, PATCH_DROPOUT)

    s = SECOND_IMAGE_SIZE
    tensors = {
        "images": images,
        "text": text,
        "image_features": image_features,
        "text_features": text_features,
        "logit_scale": model.logit_scale,
        "logits_per_image": logits_per_image,
        f"images_{s}px": images_big,
        f"visual.positional_embedding_{s}px": resized["visual.positional_embedding"],
        f"image_features_{s}px": image_features_big,
        "patch_dropout_kept": kept,
        "image_features_patch_dropout": image_features_dropped,
    }
    meanings = {
        "images": f"input images [N, 3, {image_size}, {image_size}], standard normal noise (already 'normalised')",
        "text": f"input token ids [M, 16]: {TINY_SOT} first, random ids in [1, {TINY_SOT}), then {TINY_EOT} "
        f"(the largest id, at positions {TINY_EOT_POSITIONS}), then 0 padding",
        "image_features": "model.encode_image(images, normalize=False): projected, not normalised",
        "text_features": "model.encode_text(text, normalize=False): projected, not normalised",
        "logit_scale": "the model's logit_scale parameter (a log; the logits use its exp)",
        "logits_per_image": "model.get_logits(images, text)[0] = exp(logit_scale) * normalize(image_features) "
        "@ normalize(text_features).T, shape [N, M]; logits_per_text is its transpose",
        f"images_{s}px": f"input images at {s} px, standard normal noise",
        f"visual.positional_embedding_{s}px": f"open_clip.model.resize_pos_embed of the state dict's "
        f"visual.positional_embedding to the {s} px grid (class token row kept, grid bicubic antialias)",
        f"image_features_{s}px": f"encode_image(images_{s}px, normalize=False) of the same weights with the "
        f"resized positional embedding (create_model(..., force_image_size={s}))",
        "patch_dropout_kept": f"the patches (0-based among the patches) each image kept in "
        f"image_features_patch_dropout, in open_clip's order",
        "image_features_patch_dropout": f"encode_image(images, normalize=False) with the vision config's "
        f"patch_dropout = {PATCH_DROPOUT} in training mode (the rest of the model in eval mode)",
    }
    save_tensors(OUT / f"io_{name}.safetensors", tensors)
    write_json(
        OUT / f"io_{name}.json",
        {
            "versions": VERSIONS,
            "model": f"model_{name}.json (config) and model_{name}.safetensors (state dict)",
            "construction": "torch.manual_seed(1234); open_clip.create_model(config); then every parameter "
            "+= 0.05 * N(0, 1) noise (generator seed 4321); eval mode, float32, CPU",
            "activation": "QuickGELU x * sigmoid(1.702 x)" if config["quick_gelu"] else "nn.GELU (exact, erf)",
            "layer_norm_eps": 1e-5,
            "tensors": describe(tensors, meanings),
        },
    )


def check_bicubic_antialias_description(resized, grid_in, grid_out):
    """Checks the sidecar's description of torch's antialiased bicubic against the fixture."""

    def keys_cubic(t, a=-0.5):
        t = np.abs(t)
        near = (a + 2) * t**3 - (a + 3) * t**2 + 1
        far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    def weights(n_in, n_out):
        scale = n_in / n_out
        stretch = max(scale, 1.0)
        centres = (np.arange(n_out) + 0.5) * scale
        dist = np.arange(n_in)[None, :] + 0.5 - centres[:, None]
        w = np.where(np.abs(dist) < 2 * stretch, keys_cubic(dist / stretch), 0.0)
        return w / w.sum(axis=1, keepdims=True)

    def resize(grid):
        w = weights(grid_in, grid_out)
        return np.einsum("yi,xj,ijc->yxc", w, w, grid)

    emb = resized["in"].double().numpy()
    grid = emb[1:].reshape(grid_in, grid_in, -1)
    expected = resize(grid).reshape(grid_out * grid_out, -1)
    got = resized["out"].double().numpy()
    assert np.array_equal(got[0], emb[0])
    assert np.abs(got[1:] - expected).max() < 1e-5, np.abs(got[1:] - expected).max()


def make_pos_embed_fixture():
    generator = torch.Generator().manual_seed(77)
    width = 8
    tensors, meanings = {}, {}
    for grid_in, grid_out in [(2, 14), (14, 4)]:
        pos = torch.randn(grid_in * grid_in + 1, width, generator=generator)
        state_dict = {"visual.positional_embedding": pos.clone()}
        # resize_pos_embed reads only model.visual.grid_size and rewrites the state dict entry.
        target = types.SimpleNamespace(visual=types.SimpleNamespace(grid_size=(grid_out, grid_out)))
        resize_pos_embed(state_dict, target)
        out = state_dict["visual.positional_embedding"]
        assert out.shape == (grid_out * grid_out + 1, width)
        check_bicubic_antialias_description({"in": pos, "out": out}, grid_in, grid_out)
        key = f"grid{grid_in}_to_{grid_out}"
        tensors[f"{key}.input"] = pos
        tensors[f"{key}.output"] = out
        meanings[f"{key}.input"] = (
            f"[1 + {grid_in}*{grid_in}, {width}]: row 0 is the class token, then the {grid_in}x{grid_in} grid "
            "row-major (row y, column x)"
        )
        meanings[f"{key}.output"] = (
            f"[1 + {grid_out}*{grid_out}, {width}]: open_clip.model.resize_pos_embed of the input to grid "
            f"{grid_out}x{grid_out}; class token row copied unchanged"
        )
    save_tensors(OUT / "pos_embed_resize.safetensors", tensors)
    write_json(
        OUT / "pos_embed_resize.json",
        {
            "versions": VERSIONS,
            "function": "open_clip.model.resize_pos_embed(state_dict, model) with its defaults "
            "interpolation='bicubic', antialias=True; it calls torch.nn.functional.interpolate(grid as "
            "[1, width, H, W], size=(H', W'), mode='bicubic', antialias=True, align_corners=False)",
            "interpolate_options": {"mode": "bicubic", "antialias": True, "align_corners": False},
            "what_torch_computes": "separable; per axis, output i has centre c = (i + 0.5) * in/out in input "
            "pixel units, stretch s = max(in/out, 1), weight of input j = K((j + 0.5 - c) / s) for "
            "|j + 0.5 - c| < 2 s, else 0, then the weights of each output are divided by their sum (so "
            "taps beyond the border are dropped, not clamped). K is Keys' cubic with a = -0.5 (not the "
            "-0.75 of torch's bicubic without antialias). The script checks this description against the "
            "stored outputs to 1e-5 each time it runs.",
            "tensors": describe(tensors, meanings),
        },
    )


def make_clip_loss_fixture():
    generator = torch.Generator().manual_seed(2024)
    loss_fn = open_clip.ClipLoss()
    tensors, meanings = {}, {}
    for batch, dim, log_scale in [(7, 5, math.log(1 / 0.07)), (33, 16, math.log(100.0))]:
        key = f"b{batch}_d{dim}"
        # Norms far from 1 make the normalisation's gradient matter; a small shared component makes the
        # positives score above chance, like a model in training, so the loss is neither
        # ~0 nor ~log(batch) and no gradient vanishes.
        shared = torch.randn(batch, dim, generator=generator)
        image = 3.0 * (shared + 0.7 * torch.randn(batch, dim, generator=generator))
        text = 0.5 * (shared + 0.7 * torch.randn(batch, dim, generator=generator))
        log_scale_t = torch.tensor(log_scale, dtype=torch.float32)

        image64 = image.double().requires_grad_()
        text64 = text.double().requires_grad_()
        log_scale64 = log_scale_t.double().requires_grad_()
        loss = loss_fn(F.normalize(image64, dim=-1), F.normalize(text64, dim=-1), log_scale64.exp())
        loss.backward()

        entries = {
            "image_features": (image, f"[{batch}, {dim}] unnormalised image features (the loss input)"),
            "text_features": (text, f"[{batch}, {dim}] unnormalised text features (the loss input)"),
            "logit_scale": (log_scale_t, "scalar: the log of the logit scale, as the model's logit_scale parameter"),
            "loss": (
                loss.detach().float(),
                "scalar: ClipLoss()(F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1), "
                "logit_scale.exp()) = (CE(logits, arange) + CE(logits.T, arange)) / 2, logits = exp(logit_scale) "
                "* normalised image @ normalised text.T, CE = mean cross-entropy over rows",
            ),
            "grad_image_features": (
                image64.grad.float(),
                f"[{batch}, {dim}] d loss / d image_features, through the L2 normalisation",
            ),
            "grad_text_features": (
                text64.grad.float(),
                f"[{batch}, {dim}] d loss / d text_features, through the L2 normalisation",
            ),
            "grad_logit_scale": (
                log_scale64.grad.float(),
                "scalar: d loss / d logit_scale (the log), i.e. through the exp",
            ),
        }
        add_entries(tensors, meanings, key, entries)
    save_keyed_fixture(
        "clip_loss",
        tensors,
        meanings,
        "inputs stored as float32; the loss and gradients were computed in float64 from "
        "those float32 values with torch autograd through F.normalize (eps 1e-12) and exp, then rounded "
        "to float32; open_clip.ClipLoss() with its defaults (one process, no label smoothing)",
    )


def make_siglip_loss_fixture():
    generator = torch.Generator().manual_seed(2025)
    loss_fn = open_clip.loss.SigLipLoss()
    tensors, meanings = {}, {}
    # open_clip's --siglip initialisation (logit_scale ln 10, logit_bias -10), a later point of training, and
    # a block of another rank's texts (negatives only).
    cases = [(7, 5, math.log(10.0), -10.0, False), (33, 16, 2.0, -3.0, False), (8, 12, 2.5, -4.0, True)]
    for batch, dim, log_scale, bias, negative_only in cases:
        key = f"b{batch}_d{dim}" + ("_negatives" if negative_only else "")
        shared = torch.randn(batch, dim, generator=generator)
        image = 3.0 * (shared + 0.7 * torch.randn(batch, dim, generator=generator))
        text = 0.5 * (shared + 0.7 * torch.randn(batch, dim, generator=generator))
        log_scale_t = torch.tensor(log_scale, dtype=torch.float32)
        bias_t = torch.tensor(bias, dtype=torch.float32)

        image64 = image.double().requires_grad_()
        text64 = text.double().requires_grad_()
        log_scale64 = log_scale_t.double().requires_grad_()
        bias64 = bias_t.double().requires_grad_()
        loss = loss_fn._loss(
            F.normalize(image64, dim=-1),
            F.normalize(text64, dim=-1),
            log_scale64.exp(),
            bias64,
            negative_only=negative_only,
        )
        loss.backward()

        labels = "-1 for every pair" if negative_only else "+1 on the diagonal, -1 elsewhere"
        entries = {
            "image_features": (image, f"[{batch}, {dim}] unnormalised image features (the loss input)"),
            "text_features": (text, f"[{batch}, {dim}] unnormalised text features (the loss input)"),
            "logit_scale": (log_scale_t, "scalar: the log of the logit scale, as the model's logit_scale parameter"),
            "logit_bias": (bias_t, "scalar: the model's logit_bias parameter"),
            "loss": (
                loss.detach().float(),
                f"scalar: SigLipLoss()._loss(F.normalize(image_features, dim=-1), F.normalize(text_features, "
                f"dim=-1), logit_scale.exp(), logit_bias, negative_only={negative_only}) = "
                f"-sum(logsigmoid(labels * logits)) / {batch}, logits = exp(logit_scale) * normalised image @ "
                f"normalised text.T + logit_bias, labels {labels}",
            ),
            "grad_image_features": (image64.grad.float(), f"[{batch}, {dim}] d loss / d image_features"),
            "grad_text_features": (text64.grad.float(), f"[{batch}, {dim}] d loss / d text_features"),
            "grad_logit_scale": (log_scale64.grad.float(), "scalar: d loss / d logit_scale (the log)"),
            "grad_logit_bias": (bias64.grad.float(), "scalar: d loss / d logit_bias"),
        }
        add_entries(tensors, meanings, key, entries)
    save_keyed_fixture(
        "siglip_loss",
        tensors,
        meanings,
        "inputs stored as float32; the loss and gradients were computed in float64 from "
        "those float32 values with torch autograd through F.normalize (eps 1e-12) and exp, then rounded "
        "to float32; open_clip.SigLipLoss()._loss, one rank",
    )


PATCH_DROPOUT = 0.5


def encode_with_patch_dropout(model, images, prob):
    """Image features with FLIP's patch dropout at `prob` as open_clip trains with it, and the
    patches each image kept (re-drawn from the same seed, as make_patch_dropout_fixture does)."""
    from open_clip.transformer import PatchDropout

    visual = model.visual
    saved = visual.patch_dropout
    visual.patch_dropout = PatchDropout(prob).train()
    patches = visual.grid_size[0] * visual.grid_size[1]
    torch.manual_seed(99)
    with torch.no_grad():
        features = model.encode_image(images, normalize=False)
    visual.patch_dropout = saved
    torch.manual_seed(99)
    keep = max(1, int(patches * (1 - prob)))
    kept = torch.randn(images.shape[0], patches).topk(keep, dim=-1).indices
    return features, kept.to(torch.int64)


def make_patch_dropout_fixture():
    from open_clip.transformer import PatchDropout

    tensors, meanings = {}, {}
    # A 4x4 grid at FLIP's 0.5, a 7x7 grid at 0.75, and a 2x2 grid where int(4 * 0.1) = 0 keeps the one patch
    # open_clip's max(1, ...) guarantees.
    for batch, grid, width, prob, seed in [(3, 4, 8, 0.5, 11), (2, 7, 4, 0.75, 12), (2, 2, 4, 0.9, 13)]:
        key = f"b{batch}_g{grid}_p{prob}"
        tokens = 1 + grid * grid
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, tokens, width, generator=generator, dtype=torch.float64).requires_grad_()
        upstream = torch.randn(batch, 1 + max(1, int(grid * grid * (1 - prob))), width, generator=generator,
                               dtype=torch.float64)
        module = PatchDropout(prob).train()
        torch.manual_seed(seed)
        out = module(x)
        out.backward(upstream)
        # The same draw as the module's, to record which patches it kept.
        torch.manual_seed(seed)
        kept = torch.randn(batch, grid * grid).topk(out.shape[1] - 1, dim=-1).indices
        entries = {
            "tokens": (x.detach(), f"[{batch}, {tokens}, {width}] tokens: the class token, then {grid}x{grid} patches"),
            "kept": (kept.to(torch.int64), f"[{batch}, {out.shape[1] - 1}] the patches kept (0-based among the "
                     "patches), in open_clip's order (topk of random scores)"),
            "output": (out.detach(), f"PatchDropout({prob}).train()(tokens): each image's class token, then its kept "
                       "patches"),
            "upstream": (upstream, "the output's gradient"),
            "grad_tokens": (x.grad, "d(sum(output * upstream)) / d tokens: the upstream rows scattered back, zeros "
                            "for dropped patches"),
        }
        add_entries(tensors, meanings, key, entries)
    save_keyed_fixture(
        "patch_dropout",
        tensors,
        meanings,
        "float64 tokens through open_clip.transformer.PatchDropout in training mode, torch's "
        "global generator seeded before the call; the kept patches re-drawn from the same seed",
    )


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    make_tokenizer_fixture()
    with tempfile.TemporaryDirectory() as config_dir:
        for name, config in MODEL_CONFIGS.items():
            make_model_fixture(name, config, Path(config_dir))
    make_pos_embed_fixture()
    make_clip_loss_fixture()
    make_siglip_loss_fixture()
    make_patch_dropout_fixture()


if __name__ == "__main__":
    main()
