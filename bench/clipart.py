"""How well a model's features find another version of a drawing, and drawings of the same kind, in a real
third-party collection: Debian's openclipart-png, by top-level category (those with at least 50 pictures).

The database is every picture of those categories; the queries are changed copies of the pictures pretraining never
sees (training.corpora.held_out: a tenth, by path): recoloured, outlined, greyscale, at half size in the frame, on a
coloured background (this bench's own changes). Per change and method: the original in the top 5, and category
precision@10 (the original itself left out). Methods: the model's pooled features (cosine) of every picture prepared
as the product prepares it (training.prepare, with the collection's profile), and the floor every model must
clear, raw-pixel cosine (32×32 RGB on white, as they are), in the same run.

python bench/clipart.py [--model models/backbone] [--image-size 64] [--queries 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from indexer.evaluate import pixel_vectors  # noqa: E402
from training.corpora import OPENCLIPART, held_out, openclipart_files, rgba  # noqa: E402
from training.prepare import measure_profile, prepare  # noqa: E402

MIN_PER_CATEGORY = 50
PIXELS = 32  # the raw-pixel floor's side


def on(picture: np.ndarray, colour=(255, 255, 255)) -> Image.Image:
    """An RGBA picture over a plain colour."""
    a = picture.astype(np.float32) / 255
    rgb = a[..., :3] * a[..., 3:] + np.asarray(colour, np.float32) / 255 * (1 - a[..., 3:])
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def _recolour(p, rng):
    a = p.copy()
    a[..., :3] = a[..., :3][..., rng.permutation(3)]
    return on(a)


def _outline(p, rng):
    edges = on(p).convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    return ImageOps.invert(edges.filter(ImageFilter.MaxFilter(3))).convert("RGB")


def _half(p, rng):
    im = on(p)
    frame = Image.new("RGB", im.size, (255, 255, 255))
    small = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    frame.paste(small, (int(rng.integers(0, im.width - small.width)), int(rng.integers(0, im.height - small.height))))
    return frame


CHANGES = {
    "recoloured": _recolour,
    "outlined": _outline,
    "greyscale": lambda p, rng: on(p).convert("L").convert("RGB"),
    "half size": _half,
    "coloured background": lambda p, rng: on(p, tuple(int(v) for v in rng.integers(60, 230, 3))),
}


def load(size: int):
    """(pictures [n, size, size, 4], category of each, held-out mask) for the categories with enough pictures; kept
    in data/ after the first run."""
    cache = Path(__file__).resolve().parent.parent / "data" / f"clipart-{size}.npz"
    if cache.is_file():
        z = np.load(cache)
        return z["pictures"], z["cats"], z["held"]
    pictures, cats, held = _read(size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, pictures=pictures, cats=cats, held=held)
    return pictures, cats, held


def _read(size: int):
    files = [f for f in openclipart_files() if len(f.relative_to(OPENCLIPART).parts) > 1]
    category = [f.relative_to(OPENCLIPART).parts[0] for f in files]
    names, counts = np.unique(category, return_counts=True)
    keep = set(names[counts >= MIN_PER_CATEGORY])
    pictures, cats, held = [], [], []
    for f, c in zip(files, category, strict=True):
        if c not in keep:
            continue
        try:
            with Image.open(f) as image:
                pictures.append(rgba(image, size))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue
        cats.append(c)
        held.append(held_out(f.relative_to(OPENCLIPART)))
    return np.stack(pictures), np.array(cats), np.array(held)


def pixels(images: list[Image.Image]) -> np.ndarray:
    """The floor: raw 32×32 RGB pixels, centred (indexer.evaluate.pixel_vectors)."""
    return pixel_vectors(images, PIXELS, "RGB", centred=True, resample=Image.Resampling.BILINEAR)


class Features:
    """A model dir's pooled ConvNeXt features (a pretrained backbone, or the backbone of a trained model dir)."""

    def __init__(self, model: str, size: int):
        from transformers import AutoImageProcessor, ConvNextModel

        self.net = ConvNextModel.from_pretrained(model, dtype=torch.float32).eval()
        if (Path(model) / "preprocessor_config.json").is_file():
            processor = AutoImageProcessor.from_pretrained(model)
            mean, std = processor.image_mean, processor.image_std
        else:  # a pretraining checkpoint: pretraining's normalisation
            from training import pretrain

            mean, std = pretrain.MEAN, pretrain.STD
        self.size = size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        out = []
        for s in range(0, len(images), 256):
            x = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB").resize((self.size, self.size),
                             Image.Resampling.BILINEAR), np.float32)).permute(2, 0, 1) for im in images[s:s + 256]])
            f = self.net((x / 255 - self.mean) / self.std).pooler_output
            out.append(torch.nn.functional.normalize(f, dim=-1).numpy())
        return np.concatenate(out)


def scores(q: np.ndarray, db: np.ndarray, originals: np.ndarray, cats: np.ndarray) -> tuple[float, float]:
    """(the original in the top 5, category precision@10 with the original left out), by cosine."""
    sim = q @ db.T
    rows = np.arange(len(q))
    top5 = float(np.mean((sim > sim[rows, originals][:, None]).sum(1) < 5))
    sim[rows, originals] = -np.inf
    top10 = np.argpartition(-sim, 10, axis=1)[:, :10]
    return top5, float(np.mean(cats[top10] == cats[originals][:, None]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/backbone", help="a ConvNeXt model dir (its pooled features)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--queries", type=int, default=300, help="held-out pictures queried (spread evenly)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    started = time.perf_counter()
    pictures, cats, held = load(args.image_size)
    originals = np.flatnonzero(held)
    originals = originals[np.linspace(0, len(originals) - 1, min(args.queries, len(originals))).round().astype(int)]
    white = [on(x) for x in pictures]
    features = Features(args.model, args.image_size)
    # The product prepares the collection's pictures and every query like the collection (training.prepare); the
    # floor takes the pixels as they are.
    profile = measure_profile(white[:: max(1, len(white) // 2000)])
    methods = {"pixels": pixels, "model": lambda images: features([prepare(im, profile)[0] for im in images])}
    db = {name: f(white) for name, f in methods.items()}
    rec = Recorder("clipart")
    for change, make in CHANGES.items():
        rng = np.random.default_rng(args.seed)
        queries = [make(pictures[i], rng) for i in originals]
        result = {name: scores(f(queries), db[name], originals, cats) for name, f in methods.items()}
        for k, what in enumerate(("original_in_top5", "category_p_at_10")):
            rec.figure(f"{what}[{change}]", result["model"][k], "share", result["pixels"][k], "raw-pixel cosine",
                       model=args.model, queries=len(originals), database=len(pictures),
                       categories=len(set(cats)))
    rec.figure("seconds", time.perf_counter() - started, "s", better="lower")


if __name__ == "__main__":
    main()
