"""The folder path, end to end with default settings (`python -m app.collection FOLDER --no-serve`, what
`make collection` runs): train + index time, test accuracy beside chance, Hamming mAP@all (test pictures against
the train ones, indexer.evaluate), and the files skipped. On two folders no one here drew by hand:
- digits: scikit-learn's copy of the UCI handwritten digits (1,797 real 8×8 scans, 10 classes), one PNG each;
- shapes: 180 colour pictures in 3 classes (60 each, sizes 48-160 px, the object anywhere), one corrupt file per
  class added, as a person's folder may hold.

python bench/folders.py [--only digits|shapes]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, fill_shape  # noqa: E402


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


def measure(rec: Recorder, name: str, folder: Path, work: Path) -> None:
    from app.collection import prepare
    from indexer.evaluate import evaluate

    t0 = time.perf_counter()
    done = prepare(folder, qdrant=str(work / "q"), models_dir=work / "models")
    seconds = time.perf_counter() - t0
    report = evaluate(done["model"], str(folder), qdrant=str(work / "q"), collection=done["collection"],
                      output=str(work / "eval"))
    training = done["training"]
    rec.figure(f"{name}_test_accuracy", training["test_accuracy"], "accuracy", baseline=training["chance"],
               baseline_name="chance (the commonest label)", train_samples=training["train_samples"],
               test_samples=training["test_samples"], epochs=training["epochs"], batch_size=training["batch_size"],
               warning=training["warning"])
    rec.figure(f"{name}_hamming_map_all", report["methods"]["hamming"]["map_all"], "mAP",
               cosine_map_all=round(report["methods"]["cosine"]["map_all"], 4))
    rec.figure(f"{name}_train_and_index_seconds", seconds, "s", train_seconds=training["train_seconds"],
               indexed=done["index"]["indexed"])
    rec.figure(f"{name}_skipped_files", len(training["skipped_files"]), "files",
               training=[s["path"] for s in training["skipped_files"]],
               indexing=[b["source"]["file"] for b in done["index"]["bad_items"]])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=["digits", "shapes"], default=None)
    args = p.parse_args()
    rec = Recorder("folders")
    work = Path(tempfile.mkdtemp())
    if args.only in (None, "digits"):
        measure(rec, "digits", digits_folder(work / "digits"), work)
    if args.only in (None, "shapes"):
        measure(rec, "shapes", shapes_folder(work / "shapes"), work)
    print(json.dumps([f["figure"] for f in rec.lines]))


if __name__ == "__main__":
    main()
