"""The folder path, end to end with default settings (`python -m app.collection FOLDER`, what `make collection`
runs): for the backbone's collection (served first) and the folder's fine-tuned model (served next), the seconds
until each answers, test accuracy beside chance, Hamming and cosine mAP@all with raw pixels beside them (test
pictures against the train ones, indexer.evaluate), and the files skipped. On folders no one here drew by hand:
- digits: scikit-learn's copy of the UCI handwritten digits (1,797 real 8×8 scans, 10 classes), one PNG each;
- shapes: 180 colour pictures in 3 classes (60 each, sizes 48-160 px, the object anywhere), one corrupt file per
  class added, as a person's folder may hold;
- clipart2000: 2,000 drawings of openclipart-png's 8 largest categories (64 px, transparent), served as a person
  starts it: the seconds until the page answers, and until it answers with the fine-tuned model.

python bench/folders.py [--only digits|shapes|clipart] [--fine-tune-flags "--seed 1 --outline-views 0"]
(with --fine-tune-flags, a variant of the digits and shapes steps: figures in bench/results/folders-seed-1.json, …)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, fill_shape, serve_process  # noqa: E402


def digits_folder(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype("uint8"), mode="L").save(folder / f"{i:04d}.png")
    return root


def shapes_folder(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    colours = {"circle": (200, 40, 40), "square": (40, 160, 60), "triangle": (50, 80, 210)}
    for kind, colour in colours.items():
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            w, h = rng.randint(48, 160), rng.randint(48, 160)
            bg = tuple(rng.randint(150, 255) for _ in range(3))
            image = Image.new("RGB", (w, h), bg)
            d = ImageDraw.Draw(image)
            r = rng.randint(min(w, h) // 6, min(w, h) // 3)
            cx, cy = rng.randint(r, w - r), rng.randint(r, h - r)
            fill_shape(d, kind, cx, cy, r, tuple(min(255, max(0, v + rng.randint(-40, 40))) for v in colour))
            image.save(root / kind / f"{i:03d}.jpg", quality=90)
        good = (root / kind / "000.jpg").read_bytes()
        (root / kind / "zz_truncated.jpg").write_bytes(good[: len(good) // 2])  # one corrupt file a class
    return root


def measure(rec: Recorder, name: str, folder: Path, work: Path, flags: tuple[str, ...] = ()) -> None:
    """`python -m app.collection FOLDER --no-serve`, step by step: the backbone's collection (what is served first),
    then the folder's own model fine-tuned and the collection embedded again; each evaluated (test pictures against
    the train ones)."""
    from app.collection import fine_tune, index_folder, prepare
    from indexer.evaluate import evaluate

    t0 = time.perf_counter()
    done = prepare(folder, qdrant=str(work / "q"), models_dir=work / "models", image_dir=work / "images")
    stages = [("backbone", done["model"], time.perf_counter() - t0, done["training"])]
    if done["fine_tune"]:
        model = fine_tune(done["fine_tune"], flags)
        index_folder(model, done["collection"], folder, str(work / "q"), work / "images")
        stages.append(("fine-tuned", model, time.perf_counter() - t0, json.loads((Path(model) / "metrics.json")
                                                                                   .read_text())))
    for stage, model, seconds, training in stages:
        report = evaluate(model, str(folder), qdrant=str(work / "q"), collection=done["collection"],
                          output=str(work / f"eval-{stage}"))
        rec.figure(f"{name}_test_accuracy[{stage}]", training["test_accuracy"] or 0.0, "accuracy",
                   baseline=training.get("chance"), baseline_name="chance (the commonest label)",
                   train_samples=training["train_samples"], test_samples=training["test_samples"],
                   epochs=training.get("epochs"), batch_size=training.get("batch_size"))
        rec.figure(f"{name}_hamming_map_all[{stage}]", report["methods"]["hamming"]["map_all"], "mAP",
                   cosine_map_all=round(report["methods"]["cosine"]["map_all"], 4),
                   raw_pixels_map_all=round(report["methods"]["raw_pixels"]["map_all"], 4),
                   **({"fine_tune_flags": " ".join(flags)} if flags else {}))
        rec.figure(f"{name}_seconds_to_searchable[{stage}]", seconds, "s", better="lower",
                   indexed=done["index"]["indexed"])
    rec.figure(f"{name}_skipped_files", len(done["index"]["bad_items"]), "files",
               indexing=[b["source"]["file"] for b in done["index"]["bad_items"]])


def clipart_folder(root: Path, pictures: int = 2000, categories: int = 8) -> Path:
    """`pictures` drawings of openclipart-png's `categories` largest categories (bench/clipart.py's 64 px RGBA PNGs,
    evenly spread), one sub-folder each: a real third-party collection of the issue's size."""
    import numpy as np

    from bench.clipart import SIZE, folder_of, load

    images, cats, _ = load(SIZE)
    names, counts = np.unique(cats, return_counts=True)
    keep = np.flatnonzero(np.isin(cats, names[np.argsort(-counts)[:categories]]))
    keep = keep[np.linspace(0, len(keep) - 1, min(pictures, len(keep))).round().astype(int)]
    return folder_of(images[keep], cats[keep], root)


def served(rec: Recorder, name: str, folder: Path, work: Path) -> None:
    """What a person waits for: `python -m app.collection FOLDER` started, until the page answers a search (the
    backbone's collection), and until it answers with the folder's own fine-tuned model."""
    from gradio_client import Client, handle_file

    t0 = time.perf_counter()
    proc, url = serve_process([sys.executable, "-m", "app.collection", str(folder), "--data-dir", str(work / "d"),
                               "--port", "0"], cwd=work, timeout_s=1800)
    try:
        client = Client(url, verbose=False)
        query = handle_file(str(sorted(folder.rglob("*.png"))[0]))
        client.predict(query, "cosine", 10, api_name="/search")
        rec.figure(f"{name}_seconds_to_served_page", time.perf_counter() - t0, "s", better="lower",
                   pictures=len(list(folder.rglob("*.png"))))
        while client.predict(api_name="/overview")["model"] != folder.name:
            if proc.poll() is not None or time.perf_counter() - t0 > 3600:
                raise RuntimeError("the folder's own model never answered: " + "".join(proc.lines)[-2000:])
            time.sleep(5)
        rec.figure(f"{name}_seconds_to_fine_tuned_answers", time.perf_counter() - t0, "s", better="lower")
    finally:
        proc.kill()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=["digits", "shapes", "clipart"], default=None)
    p.add_argument("--fine-tune-flags", default="", help="more flags of the fine-tuning (python -m training)")
    args = p.parse_args()
    flags = tuple(shlex.split(args.fine_tune_flags))
    rec = Recorder("folders" + "".join(f"-{w}" for w in re.findall(r"[a-z0-9.]+", " ".join(flags))))
    work = Path(tempfile.mkdtemp())
    if args.only in (None, "digits"):
        measure(rec, "digits", digits_folder(work / "digits"), work, flags)
    if args.only in (None, "shapes"):
        measure(rec, "shapes", shapes_folder(work / "shapes"), work, flags)
    if args.only in (None, "clipart") and not flags:  # the served page fine-tunes with the defaults only
        served(rec, "clipart2000", clipart_folder(work / "clipart2000"), work)
    print(json.dumps([f["figure"] for f in rec.lines]))


if __name__ == "__main__":
    main()
