"""From a folder of pictures to a served search page, in one command (`make collection DATA=folder`).

python -m app.collection FOLDER [--model DIR] [--name NAME] [--image-size PX] [--retrain] [--no-serve] [app flags]

1. The model: `--model` if given (needed for a folder without class sub-folders); else the folder's own model,
   `models/<name>`, trained from scratch with the defaults that suit the folder's size (training.schedule), and reused
   by later runs (`--retrain` trains it again).
2. The collection `<name>`: the folder indexed into it; a later run indexes only the pictures added since (a
   folder's images are named by their file), and reports the files it skipped, by path.
3. The app, serving that collection (`--no-serve` stops after indexing); other flags go to `python -m app`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training import config


def input_size(folder: Path, sample: int = 200) -> int:
    """The input size of a model trained on `folder`: 28 px for small pictures (a median shorter side of at most
    32 px: scans, icons, thumbnails), else 64 px (photos: the object, framed, fills the input)."""
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    sides = []
    for path in files[:: max(1, len(files) // sample)]:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except OSError:
            continue  # reported when the folder is loaded
    sides.sort()
    return 28 if sides and sides[len(sides) // 2] <= 32 else 64


def prepare(folder: Path, model: str | None = None, name: str | None = None, image_size: int | None = None,
            retrain: bool = False, qdrant: str | None = None, models_dir: Path = Path("models"),
            preset: str = "fmnist-small", epochs: float | None = None) -> dict:
    """Train (or reuse) the folder's model and index the folder; returns what was done."""
    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index
    from training.train import TrainArgs, train

    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of pictures")
    name = name or folder.name
    done: dict = {"folder": str(folder), "collection": name}
    if model is None:
        model_dir = models_dir / name
        metrics = model_dir / "metrics.json"
        reuse = (not retrain and (model_dir / "model.safetensors").is_file() and metrics.is_file()
                 and json.loads(metrics.read_text()).get("dataset") == str(folder))
        if reuse:
            done["training"] = "reused " + str(model_dir)
        else:
            result = train(TrainArgs(dataset=str(folder), model=preset, output=str(model_dir),
                                     image_size=image_size or input_size(folder), epochs=epochs, resume=False,
                                     validation=0.1))  # a tenth held out to keep the best epoch
            done["training"] = {k: result[k] for k in ("test_accuracy", "chance", "train_samples", "test_samples",
                                                       "epochs", "batch_size", "train_seconds", "warning",
                                                       "skipped_files", "validation", "best_checkpoint")}
        model = str(model_dir)
    done["model"] = model
    store = open_store(name, qdrant)
    try:
        report = build_index(Embedder(model), store, str(folder))
        done["index"] = {"points": store.count(), **{k: v for k, v in report.as_dict().items()
                                                    if k in ("indexed", "skipped_existing", "bad", "bad_items")}}
    finally:
        store.close()
    return done


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m app.collection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--model", default=None, help="an existing model dir (default: train models/<name>)")
    p.add_argument("--name", default=None, help="collection and model name (default: the folder's name)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input size of a model trained here (default: 28 px for pictures of at most 32 px, else 64)")
    p.add_argument("--retrain", action="store_true", help="train the folder's model again")
    config.add_flags(p, "qdrant", "data_dir")
    p.add_argument("--no-serve", action="store_true", help="train and index only")
    args, app_flags = p.parse_known_args(argv)
    location = config.resolve_location(args.qdrant, args.data_dir)  # where `python -m app` below serves it from
    try:
        done = prepare(args.folder, args.model, args.name, args.image_size, args.retrain, location)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(done, indent=2))
    if args.no_serve:
        return 0
    from app.__main__ import main as serve

    flags = ["--model", done["model"], "--collection", done["collection"], "--qdrant", location,
             "--data-dir", args.data_dir]
    return serve(flags + app_flags)


if __name__ == "__main__":
    sys.exit(main())
