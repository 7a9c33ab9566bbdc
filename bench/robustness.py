"""How the product answers a person's own pictures: test images of the demo collection under the transforms a
photo goes through (shifted, cropped, rotated, small in a larger frame, on a light background, tinted, blurred,
noisy, JPEG'd, upscaled, and all at once as a product photo, also with a dim room's grain; and lying on a real
surface, bench/surfaces.py: linen, terrazzo, marble, a wall by a window, a table under a lamp, photographs of real
surfaces (GIMP's textures), a table with the floor beyond its edge, each garment in a colour of its own, shaded
either way round or as a photo is, turned, in uneven light, with a shadow), searched as the app searches them.

For each transform and metric: how often the original comes back in the top 5 (on a surface, also apart for the
garments drawn plain and those wearing stripes or checks their original does not show), label precision@10, and the
predicted class's accuracy; with preparation (the product) and without (the baseline, same run, same queries).

python bench/robustness.py [--model models/fmnist-small] [--collection fashion_mnist] [--queries 100]
                           [--only "surface" --only "product photo" --name robustness-surfaces]

`--only` measures the transforms whose name contains one of the given texts (case-insensitive), and writes
bench/results/NAME.json (by default robustness-only) and NAME_table.json, leaving the full run's results as they are.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, Recorder  # noqa: E402
from bench.surfaces import SURFACES, on_surface  # noqa: E402
from indexer.ranking import METRICS  # noqa: E402
from training import config  # noqa: E402

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


# --- the transforms: a 28 px grey image on black in, a picture as a person might upload it out --------------
def _shift(px: int) -> Transform:
    def f(im, rng):
        dx, dy = rng.choice([-px, px]), rng.choice([-px, px])
        return im.transform(im.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=0)
    return f


def _crop(px: int) -> Transform:
    return lambda im, rng: im.crop((px, px, im.width - px, im.height - px)).resize(im.size, Image.Resampling.BILINEAR)


def _rotate(deg: float) -> Transform:
    return lambda im, rng: im.rotate(deg * rng.choice([-1, 1]), Image.Resampling.BILINEAR, fillcolor=0)


def _in_frame(share: float, aspect: float = 1.0, scale: int = 4) -> Transform:
    """The object at `share` of a larger frame (`aspect` = width/height), off-centre, upscaled `scale`×."""
    def f(im, rng):
        obj = im.resize((im.width * scale, im.height * scale), Image.Resampling.BICUBIC)
        side = obj.height / share  # the frame's shorter side
        w, h = (round(side * aspect), round(side)) if aspect >= 1 else (round(side), round(side / aspect))
        frame = Image.new("L", (w, h), 0)
        frame.paste(obj, (int(rng.integers(0, w - obj.width + 1)), int(rng.integers(0, h - obj.height + 1))))
        return frame
    return f


def _fill_frame(im, rng):
    """Closer in: the central 80 % fills the frame, the object's edges cut off."""
    m = round(im.width * 0.1)
    return im.crop((m, m, im.width - m, im.height - m)).resize(im.size, Image.Resampling.BICUBIC)


def _tint(im, rng):
    """In colour: the grey garment drawn in a random colour."""
    colour = rng.integers(60, 256, 3)
    return ImageOps.colorize(im, black=(0, 0, 0), white=tuple(int(c) for c in colour))


def _brightness(im, rng):
    return im.point(lambda v: min(255, v + 50))


def _contrast(im, rng):
    return im.point(lambda v: round(v * 0.55))


def _noise(im, rng):
    a = np.asarray(im, dtype=np.float32) + rng.normal(0, 20, (im.height, im.width))
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _jpeg(quality: int, im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _phone(im, rng):
    """Phone-size: upscaled to 1024 px, RGB, JPEG quality 85."""
    return _jpeg(85, im.convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC))


def product_photo(im, rng):
    """The scene the product exists for: the garment dark on a warm light background, small and off-centre in a
    4:3 colour frame, tinted, turned a little, with a soft shadow-free studio look, JPEG'd."""
    colour = tuple(int(c) for c in rng.integers(0, 160, 3))
    tinted = ImageOps.colorize(ImageOps.invert(im), black=colour, white=(255, 255, 255))  # a colour garment on white
    big = tinted.resize((168, 168), Image.Resampling.BICUBIC).rotate(
        float(rng.uniform(-6, 6)), Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    bg = tuple(int(v) for v in rng.integers(225, 250, 3))
    frame = Image.new("RGB", (480, 360), bg)
    mask = Image.fromarray((np.asarray(big.convert("L")) < 245).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))
    frame.paste(big, (int(rng.integers(20, 480 - 168 - 20)), int(rng.integers(20, 360 - 168 - 20))), mask)
    return _jpeg(80, frame)


def _grainy_photo(im, rng):
    """The product photo as a dim room's camera takes it: sensor grain (σ 12, luminance), JPEG quality 90."""
    photo = np.asarray(product_photo(im, rng).convert("RGB"), dtype=np.float32)
    grain = rng.normal(0, 12, photo.shape[:2])[..., None]
    return _jpeg(90, Image.fromarray((photo + grain).clip(0, 255).astype(np.uint8)))


TRANSFORMS: dict[str, Transform] = {
    "clean": lambda im, rng: im,
    "shift 1 px": _shift(1),
    "shift 2 px": _shift(2),
    "crop 1 px a side": _crop(1),
    "crop 3 px a side": _crop(3),
    "rotate 5°": _rotate(5),
    "rotate 10°": _rotate(10),
    "half size in a larger frame": _in_frame(0.5),
    "third size in a larger frame": _in_frame(1 / 3),
    "filling the frame (edges cut)": _fill_frame,
    "non-square 4:3": _in_frame(0.8, 4 / 3),
    "non-square 3:4": _in_frame(0.8, 3 / 4),
    "light background": lambda im, rng: ImageOps.invert(im),
    "tinted colour": _tint,
    "brighter (+50)": _brightness,
    "lower contrast (×0.55)": _contrast,
    "blur (radius 1)": lambda im, rng: im.filter(ImageFilter.GaussianBlur(1)),
    "noise (σ 20)": _noise,
    "JPEG q30": lambda im, rng: _jpeg(30, im),
    "phone-size upscale": _phone,
    "product photo": product_photo,
    "product photo, grainy (σ 12)": _grainy_photo,
    **{f"on a surface: {name}": on_surface(name) for name in SURFACES},
    **{f"on a surface, shaded as a photo: {name}": on_surface(name, photo_shaded=True) for name in SURFACES},
}


QUERIES = 100  # the bench's queries by default


def chosen_transforms(only: list[str]) -> dict[str, Transform]:
    """The transforms whose name contains one of `only` (case-insensitive); all of them when `only` is empty."""
    wanted = [t.lower() for t in only]
    return {n: t for n, t in TRANSFORMS.items() if not wanted or any(w in n.lower() for w in wanted)}


def bench_rows(n_test: int, queries: int = QUERIES) -> list[int]:
    """The bench's queries: `queries` rows spread evenly over a test split of `n_test`, from row 0."""
    return list(range(0, n_test, max(1, n_test // queries)))[:queries]


def encode(image: Image.Image) -> bytes:
    """Bytes as an upload carries them: a JPEG stays the JPEG it is, anything else is PNG."""
    buf = io.BytesIO()
    if image.format == "JPEG":
        image.save(buf, "JPEG", quality="keep")
    else:
        image.save(buf, "PNG")
    return buf.getvalue()


def figure_png(service, examples: list[tuple[str, bytes]], path: Path) -> None:
    """Rows of: the picture as uploaded, as prepared, its top 5 (cosine), each with its label."""
    from training.images import open_image
    from training.prepare import prepare

    cell, pad = 112, 6
    rows = []
    for name, data in examples:
        uploaded = open_image(data)
        prepared_image, _ = prepare(uploaded, service.profile)
        results, prediction, query = service.search(data, "cosine", 5)
        tiles = [(uploaded, f"uploaded: {name}"), (prepared_image, "prepared")]
        tiles += [(service.image_of(r), f"#{r['rank']} {r['label']}") for r in results]
        rows.append(tiles)
    w = 7 * (cell + pad) + pad
    h = len(rows) * (cell + 18 + pad) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, tiles in enumerate(rows):
        y = pad + r * (cell + 18 + pad)
        for c, (im, caption) in enumerate(tiles):
            x = pad + c * (cell + pad)
            if im is not None:
                scale = cell / max(im.size)  # small pictures enlarged with their pixels kept sharp
                thumb = im.convert("RGB").resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                                                 Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
                sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            draw.text((x, y + cell + 3), caption[:20], fill=(0, 0, 0))
    sheet.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_flags(p, "model", "collection", "qdrant")  # the app's defaults
    p.add_argument("--queries", type=int, default=QUERIES, help="test images, spread evenly over the test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure-only", action="store_true", help="only draw bench/results/robustness.png")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="only the transforms whose name contains TEXT (repeatable; no figure, no non-garment rows)")
    p.add_argument("--name", help="the results' name (default: robustness, or robustness-only with --only)")
    args = p.parse_args()
    transforms = chosen_transforms(args.only)
    if not transforms:
        p.error(f"no transform's name contains any of {args.only}: they are {', '.join(TRANSFORMS)}")
    results_name = args.name or ("robustness-only" if args.only else "robustness")

    from app.service import SearchService, Settings
    from indexer.store import point_id
    from training.data import load_image_dataset

    service = SearchService(Settings(model_dir=args.model, collection=args.collection, qdrant=args.qdrant))
    service.require_store()
    profile, source = service.profile, service.profile_source
    test = load_image_dataset("fashion_mnist")["test"]
    rows = bench_rows(len(test), args.queries)
    items = [(test[i]["image"], test.features["label"].names[test[i]["label"]],
              point_id({"dataset": "fashion_mnist", "split": "test", "row": i})) for i in rows]

    rec = Recorder(results_name)
    table: dict[str, dict] = {}
    started = time.perf_counter()
    for name, transform in {} if args.figure_only else transforms.items():
        rng = np.random.default_rng(args.seed)
        pictures = [(transform(im, rng), label, pid) for im, label, pid in items]
        queries = [(encode(picture), label, pid) for picture, label, pid in pictures]
        patterned = np.array([picture.info.get("patterned", False) for picture, _, _ in pictures])
        scores = {}
        for mode in ("prepared", "as is"):
            service.prepare_with(*((profile, source) if mode == "prepared" else (None, "off")))
            scores[mode] = measure(service, queries, patterned)
        table[name] = scores
        prep, raw = scores["prepared"], scores["as is"]
        for m in METRICS:
            split = {k: prep[m][k] for k in ("top5_plain", "top5_patterned") if k in prep[m]}
            rec.figure(f"original_in_top5[{name}, {m}]", prep[m]["top5"], "share", raw[m]["top5"],
                       "as is, no preparation", queries=len(queries), **split)
            rec.figure(f"label_p_at_10[{name}, {m}]", prep[m]["p10"], "share", raw[m]["p10"],
                       "as is, no preparation", queries=len(queries))
        rec.figure(f"predicted_class_accuracy[{name}]", prep["accuracy"], "share", raw["accuracy"],
                   "as is, no preparation", unlike_collection=prep["unlike"], queries=len(queries))
    service.prepare_with(profile, source)  # the product's own preparation, as the app searches
    if table:
        for name, share in {} if args.only else not_garments(service, args.queries, args.seed).items():
            rec.figure(f"flagged_unlike[not a garment: {name}]", share, "share", queries=args.queries)
            table[f"not a garment: {name}"] = {"unlike": share}
        rec.figure("seconds", time.perf_counter() - started, "s", better="lower", profile=source,
                   queries=len(items), transforms=len(transforms))
        (RESULTS / f"{rec.name}_table.json").write_text(json.dumps(table, indent=1) + "\n")
        print(markdown_table(table))
    if args.only:
        service.close()
        return
    rng = np.random.default_rng(args.seed)
    shown = [("product photo", 3), ("light background", 1), ("half size in a larger frame", 5), ("rotate 10°", 2),
             ("on a surface: terrazzo", 4), ("on a surface: window light", 6)]
    figure_png(service, [(n, encode(TRANSFORMS[n](items[i][0], rng))) for n, i in shown],
               RESULTS / "robustness.png")
    service.close()


NOT_GARMENTS = {"digits, product photo": product_photo, "digits on a surface": on_surface(None)}


def measure(service, queries: list[tuple[bytes, str, str]], patterned: np.ndarray) -> dict:
    """Per metric: the original in the top 5 and label precision@10 (with a split by `patterned`: the garment wears
    stripes or checks its original does not show, when some do); the predicted class's accuracy; the share flagged
    unlike the collection."""
    top5, p10 = {m: [] for m in METRICS}, {m: [] for m in METRICS}
    correct, unlike = [], []
    for data, label, pid in queries:
        for m in METRICS:
            results, prediction, query = service.search(data, m, 10)
            top5[m].append(pid in [r["id"] for r in results[:5]])
            p10[m].append(np.mean([r["label"] == label for r in results]))
        correct.append(max(prediction, key=prediction.get) == label)
        unlike.append(bool(query.get("unlike")))
    scores: dict = {m: {"top5": float(np.mean(top5[m])), "p10": float(np.mean(p10[m]))} for m in METRICS}
    for m in METRICS if 0 < patterned.sum() < len(patterned) else ():
        found = np.array(top5[m])
        scores[m].update(top5_plain=float(found[~patterned].mean()), top5_patterned=float(found[patterned].mean()))
    return {**scores, "accuracy": float(np.mean(correct)), "unlike": float(np.mean(unlike))}


def not_garments(service, n: int, seed: int) -> dict[str, float]:
    """How often pictures that are not garments (scikit-learn's handwritten digits, drawn like the garments: as a
    product photo, on a surface) are flagged "unlike the collection", per way of drawing them."""
    from sklearn.datasets import load_digits

    digits = load_digits().images[:n]
    images = [Image.fromarray((d / 16 * 255).astype(np.uint8)).resize((28, 28), Image.Resampling.BICUBIC)
              for d in digits]
    shares = {}
    for name, transform in NOT_GARMENTS.items():
        rng = np.random.default_rng(seed)
        flags = [bool(service.search(encode(transform(im, rng)), "cosine", 10)[2].get("unlike")) for im in images]
        shares[name] = float(np.mean(flags))
    return shares


def markdown_table(table: dict) -> str:
    """The README's table: per transform, cosine and hamming, prepared (and as is)."""
    out = ["| query | original in top 5, cosine / hamming | label P@10, cosine / hamming | predicted class | "
           "flagged unlike |", "|---|---|---|---|---|"]
    for name, s in table.items():
        if "prepared" not in s:  # not a garment: only whether it is flagged
            out.append(f"| {name} | | | | {s['unlike']:.2f} |")
            continue
        p, r = s["prepared"], s["as is"]
        out.append(
            f"| {name} | {p['cosine']['top5']:.2f} / {p['hamming']['top5']:.2f} "
            f"(as is {r['cosine']['top5']:.2f} / {r['hamming']['top5']:.2f}) | "
            f"{p['cosine']['p10']:.2f} / {p['hamming']['p10']:.2f} "
            f"(as is {r['cosine']['p10']:.2f} / {r['hamming']['p10']:.2f}) | "
            f"{p['accuracy']:.2f} (as is {r['accuracy']:.2f}) | {p['unlike']:.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
