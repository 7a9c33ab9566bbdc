"""How well the product finds another version of a drawing, and drawings of the same kind, in a real third-party
collection: Debian's openclipart-png, by top-level category (those with at least 50 pictures), as a person's folder
(data/clipart-folder/<category>/, 64 px RGBA PNGs, written once).

The database is every picture of those categories; the queries are changed copies of the pictures pretraining never
sees (training.corpora.held_out: a tenth, by path): recoloured, outlined, greyscale, at half size in the frame, on a
coloured background (this bench's own changes). Per change, method and metric: the original in the top 5, and
category precision@10 (the original itself left out), ranked by the product's rules (indexer.ranking). Methods, each
the product's own path (indexer.embedder, pictures prepared like the collection's):
- backbone: the pretrained backbone as it is (training.searcher), what `make collection` serves first;
- fine-tuned: the folder's own model fine-tuned from it (`python -m training` defaults: an instance head), what it
  serves next;
- from scratch: the fmnist-small preset trained on the folder at 64 px, what `make collection` did before;
and the floor every model must clear, raw-pixel cosine (32×32 RGB on white, as they are), in the same run.
Models are written to data/clipart-models/, one dir per method, backbone (its weights' sha256) and training setting
given, and reused by a later run with the same ones (their training time is recorded once).

python bench/clipart.py [--backbone models/backbone] [--methods backbone,fine-tuned,from-scratch] [--epochs E]
    [--body-lr-scale S] [--queries N] [--name clipart]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from indexer.floor import colour_floor  # noqa: E402
from indexer.ranking import sort_keys  # noqa: E402
from training.corpora import OPENCLIPART, held_out, openclipart_files, rgba  # noqa: E402

MIN_PER_CATEGORY = 50
SIZE = 64  # the folder's pictures' side


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
    """Its outlines only: black lines about 3 px wide on white (edges found with a white margin round the picture,
    so that its frame draws no line)."""
    grey = ImageOps.expand(on(p).convert("L"), 2, fill=255)
    edges = grey.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    lines = ImageOps.invert(edges.filter(ImageFilter.MaxFilter(3))).convert("RGB")
    return lines.crop((2, 2, lines.width - 2, lines.height - 2))


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


def pixels(images: list[Image.Image]) -> tuple[np.ndarray, None]:
    """The floor: raw pixels as small colour thumbnails (indexer.floor.colour_floor); no codes."""
    return colour_floor(images), None


def folder_of(pictures: np.ndarray, cats: np.ndarray, root: Path) -> Path:
    """The pictures as a person's folder, one sub-folder per category (written once)."""
    if not root.is_dir():
        tmp = root.with_name(root.name + ".tmp")
        for i, (picture, cat) in enumerate(zip(pictures, cats, strict=True)):
            (tmp / cat).mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(tmp / cat / f"{i:05d}.png")
        tmp.replace(root)
    return root


def cache_dir(method: str, backbone: str, root: Path, settings: dict) -> Path:
    """Where a method's model is kept: named by what makes it (the backbone, the training settings given), so that
    another backbone or setting is made anew."""
    from training.modeldir import fingerprint

    if method == "backbone":
        return root / f"backbone-{fingerprint(backbone)[:12]}"
    name = method if method == "from-scratch" else f"{method}-{fingerprint(backbone)[:12]}"
    return root / "-".join([name, *(f"{k}{v:g}" for k, v in sorted(settings.items()) if v is not None)])


def model_of(method: str, folder: Path, backbone: str, root: Path, settings: dict) -> tuple[Path, dict]:
    """The model dir of a method (made, or reused from an earlier run with the same backbone and settings) and its
    metrics. `settings`: training.args.TrainArgs fields of the trained methods (None: the product's default)."""
    from training.searcher import from_backbone
    from training.train import TrainArgs, train

    out = cache_dir(method, backbone, root, settings)
    if not (out / "metrics.json").is_file():
        if method == "backbone":
            from_backbone(backbone, str(folder), out)
        else:
            start = dict(model=backbone) if method == "fine-tuned" else dict(model="fmnist-small", image_size=64,
                                                                             instance_weight=0.0)
            given = {k: v for k, v in settings.items() if v is not None}
            train(TrainArgs(dataset=str(folder), output=str(out), validation=0.1, **given, **start))
    return out, json.loads((out / "metrics.json").read_text())


def embedder_of(model_dir: Path):
    from indexer.embedder import Embedder

    embedder = Embedder(model_dir)

    def embed(images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        emb = embedder.embed(images, embedder.profile)
        return emb.floats, emb.codes

    return embed


def scores(metric: str, q: tuple, db: tuple, originals: np.ndarray, cats: np.ndarray) -> tuple[float, float]:
    """(the original in the top 5, category precision@10 with the original left out), by `metric`'s rule."""
    keys = sort_keys(metric, q[0], q[1], db[0], db[1]) if q[1] is not None else -(q[0] @ db[0].T)
    rows = np.arange(len(originals))
    top5 = float(np.mean((keys < keys[rows, originals][:, None]).sum(1) < 5))
    keys[rows, originals] = np.inf
    top10 = np.argpartition(keys, 10, axis=1)[:, :10]
    return top5, float(np.mean(cats[top10] == cats[originals][:, None]))


def make_methods(rec: Recorder, names: list[str], folder: Path, backbone: str, settings: dict, root: Path) -> dict:
    """name → embedding function: raw pixels, and each method's model (made or reused), its making time recorded."""
    methods = {"pixels": pixels}
    for method in names:
        model_dir, metrics = model_of(method, folder, backbone, root, settings)
        methods[method] = embedder_of(model_dir)
        rec.figure(f"seconds to make[{method}]", metrics.get("train_seconds", metrics.get("seconds")), "s",
                   better="lower", test_accuracy=metrics.get("test_accuracy"), epochs=metrics.get("epochs"))
    return methods


def record(rec: Recorder, change: str, q: dict, db: dict, originals: np.ndarray, cats: np.ndarray,
           what: tuple[str, str] = ("original_in_top5", "category_p_at_10"), **extra) -> None:
    """Every method's two figures (`what`) for one kind of query, cosine and Hamming, raw-pixel cosine beside them."""
    floor = scores("cosine", q["pixels"], db["pixels"], originals, cats)
    for name in q.keys() - {"pixels"}:
        for metric in ("cosine", "hamming"):
            got = scores(metric, q[name], db[name], originals, cats)
            for k in range(2):
                rec.figure(f"{what[k]}[{change}, {name}, {metric}]", got[k], "share", floor[k], "raw-pixel cosine",
                           queries=len(originals), database=len(db["pixels"][0]), categories=len(set(cats)), **extra)


def training_settings(args: argparse.Namespace) -> dict:
    """The trained methods' settings given on the command line (None: the product's default)."""
    return {"epochs": args.epochs, "body_lr_scale": args.body_lr_scale}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="models/backbone", help="the pretrained backbone's dir")
    p.add_argument("--methods", default="backbone,fine-tuned,from-scratch")
    p.add_argument("--epochs", type=float, default=None, help="epochs of the trained methods (default: the product's)")
    p.add_argument("--body-lr-scale", type=float, default=None,
                   help="the trained methods' --body_lr_scale (default: the product's)")
    p.add_argument("--queries", type=int, default=300, help="held-out pictures queried (spread evenly)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="clipart", help="the results' name (bench/results/NAME.json)")
    args = p.parse_args()
    started = time.perf_counter()
    pictures, cats, held = load(SIZE)
    data = Path(__file__).resolve().parent.parent / "data"
    folder = folder_of(pictures, cats, data / "clipart-folder")
    originals = np.flatnonzero(held)
    originals = originals[np.linspace(0, len(originals) - 1, min(args.queries, len(originals))).round().astype(int)]
    white = [on(x) for x in pictures]
    rec = Recorder(args.name)
    methods = make_methods(rec, args.methods.split(","), folder, args.backbone, training_settings(args),
                           data / "clipart-models")
    db = {name: f(white) for name, f in methods.items()}
    for change, make in CHANGES.items():
        rng = np.random.default_rng(args.seed)
        queries = [make(pictures[i], rng) for i in originals]
        record(rec, change, {name: f(queries) for name, f in methods.items()}, db, originals, cats)
    rec.figure("seconds", time.perf_counter() - started, "s", better="lower")


if __name__ == "__main__":
    main()
