"""From a folder of pictures to a served search page, in one command (`make collection DATA=folder`).

python -m app.collection FOLDER [--model DIR] [--name NAME] [--image-size PX] [--retrain] [--no-serve] [app flags]

1. The model that answers first: `--model` if given; else the folder's own, `models/<name>`, when an earlier run
   fine-tuned it on this folder (`--retrain` trains it again); else the pretrained backbone ($BACKBONE) as it is,
   made into `models/<name>-backbone` in seconds (training.searcher): the folder is searchable at once, and a folder
   without class sub-folders needs nothing more. Without the backbone, the folder's model is trained from scratch
   before anything is served.
2. The collection `<name>`: the folder indexed into it; a later run indexes only the pictures added since (a
   folder's images are named by their file), and reports the files it skipped, by path.
3. The app, serving that collection (other flags go to `python -m app`), while the folder's own model fine-tunes from
   the backbone in another process (`python -m training`: the folder's classes, and an instance head that tells one
   picture from another); once it is done, the collection is embedded again in place (indexer.reembed) and the page
   answers with it. `--no-serve` does the same, one step after the other, and serves nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from training import config

log = logging.getLogger(__name__)

VALIDATION = 0.1  # the share of a folder's training pictures held out to keep the best epoch


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


def _own_model(model_dir: Path, folder: Path) -> bool:
    """A model dir fine-tuned (or trained) on `folder` by an earlier run, complete."""
    metrics = model_dir / "metrics.json"
    return ((model_dir / "model.safetensors").is_file() and metrics.is_file()
            and json.loads(metrics.read_text()).get("dataset") == str(folder))


def prepare(folder: Path, model: str | None = None, name: str | None = None, image_size: int | None = None,
            retrain: bool = False, qdrant: str | None = None, models_dir: Path = Path("models"),
            start: str | None = None, epochs: float | None = None, image_dir: Path | None = None) -> dict:
    """Choose (or train) the model that answers first and index the folder with it; returns what was done, and in
    `fine_tune` the training still to do (`fine_tune`), if any. `start`: what a model is trained from (default: the
    backbone, training.args.starting_point)."""
    from training.args import starting_point
    from training.data import UNLABELLED, label_names, load_image_dataset
    from training.model import PRESETS
    from training.train import TrainArgs, train

    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of pictures")
    name = name or folder.name
    done: dict = {"folder": str(folder), "collection": name, "fine_tune": None}
    own, start = models_dir / name, starting_point(start)
    if model is None and not retrain and _own_model(own, folder):
        done["training"], model = "reused " + str(own), str(own)
    elif model is None and start not in PRESETS:
        from training.searcher import from_backbone

        model = str(models_dir / f"{name}-backbone")
        if not retrain and _own_model(Path(model), folder):
            done["training"] = "reused " + model
        else:
            done["training"] = from_backbone(start, str(folder), model)
        if label_names(load_image_dataset(str(folder))) != [UNLABELLED]:
            done["fine_tune"] = {"dataset": str(folder), "model": start, "output": str(own), "epochs": epochs,
                                 "image_size": image_size}
    elif model is None:
        result = train(TrainArgs(dataset=str(folder), model=start, output=str(own), epochs=epochs, resume=False,
                                 image_size=image_size or input_size(folder), validation=VALIDATION))
        done["training"] = {k: result[k] for k in ("test_accuracy", "chance", "train_samples", "test_samples",
                                                   "epochs", "batch_size", "train_seconds", "warning",
                                                   "skipped_files", "validation", "best_checkpoint")}
        model = str(own)
    done["model"] = model
    done["index"] = index_folder(model, name, folder, qdrant, image_dir)
    return done


def index_folder(model: str, name: str, folder: Path, qdrant: str | None, image_dir: Path | None) -> dict:
    """The folder indexed into the collection `name` by `model`; a collection another model built is first embedded
    again by this one (indexer.reembed), so nothing stored is lost."""
    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index
    from indexer.reembed import reembed
    from indexer.uploads import image_dir_of

    embedder = Embedder(model)
    store = open_store(name, qdrant)
    try:
        image_dir = image_dir or image_dir_of(config.default("data_dir"))
        if store.meta and store.meta.get("model_sha256") != embedder.meta["model_sha256"]:
            reembed(store, embedder, image_dir, qdrant)
        report = build_index(embedder, store, str(folder), image_dir=image_dir)
        kept = ("indexed", "skipped_existing", "bad", "bad_items")
        return {"points": store.count(), "floor": store.meta.get("floor"),
                **{k: v for k, v in report.as_dict().items() if k in kept}}
    finally:
        store.close()


def fine_tune(spec: dict, flags: tuple[str, ...] = ()) -> str:
    """Train the folder's own model from `spec` (prepare's `fine_tune`) in a process of its own (`python -m
    training`, all the machine's cores, whatever the app's threads); returns the model dir. `flags`: more flags of
    `python -m training` (a benchmark's variants)."""
    cmd = [sys.executable, "-m", "training", "--dataset", spec["dataset"], "--model", spec["model"],
           "--output", spec["output"], "--validation", str(VALIDATION)]
    cmd += ["--epochs", str(spec["epochs"])] if spec.get("epochs") else []
    cmd += ["--image-size", str(spec["image_size"])] if spec.get("image_size") else []
    cmd += list(flags)
    log.info("fine-tuning %s from %s: %s", spec["dataset"], spec["model"], " ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError(f"fine-tuning {spec['output']} failed (its log is above); the collection goes on being "
                           "searched with the backbone: run the command again to retry")
    return spec["output"]


def switch_when_tuned(spec: dict):
    """What the served app does once started: fine-tune, then answer with the folder's own model."""

    def run(service) -> None:
        service.background = "its own model is fine-tuning; the backbone answers until then"
        try:
            done = service.switch_model(fine_tune(spec))
            service.background = None
            log.info("now answering with %s: %s", spec["output"], done)
        except Exception as e:  # whatever it is, the page says so and the backbone goes on answering
            service.background = f"⚠️ fine-tuning failed ({e}); the backbone goes on answering"
            log.exception("fine-tuning %s failed", spec["output"])

    return run


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m app.collection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--model", default=None, help="an existing model dir (default: the backbone, then the folder's "
                   "own, models/<name>, fine-tuned from it)")
    p.add_argument("--name", default=None, help="collection and model name (default: the folder's name)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input size of a model trained here (default: the backbone's; from scratch, 28 px for "
                   "pictures of at most 32 px, else 64)")
    p.add_argument("--start", default=None,
                   help="what the folder's model starts from: a model dir, a Hub id online "
                   "(facebook/convnext-tiny-224), or a preset from scratch (fmnist-small); default: the pretrained "
                   "backbone ($BACKBONE)")
    p.add_argument("--retrain", action="store_true", help="train the folder's model again")
    p.add_argument("--epochs", type=float, default=None,
                   help="epochs of the folder's model (default: chosen from the folder's size, training.schedule)")
    config.add_flags(p, "qdrant", "data_dir")
    p.add_argument("--no-serve", action="store_true", help="index, fine-tune and index again; serve nothing")
    args, app_flags = p.parse_known_args(argv)
    location = config.resolve_location(args.qdrant, args.data_dir)  # where `python -m app` below serves it from
    from indexer.uploads import image_dir_of

    image_dir = image_dir_of(args.data_dir)
    try:
        done = prepare(args.folder, args.model, args.name, args.image_size, args.retrain, location,
                       start=args.start, epochs=args.epochs, image_dir=image_dir)
        print(json.dumps(done, indent=2))
        if args.no_serve and done["fine_tune"]:
            done["model"] = fine_tune(done["fine_tune"])
            done["index"] = index_folder(done["model"], done["collection"], Path(done["folder"]), location, image_dir)
            print(json.dumps({"model": done["model"], "index": done["index"]}, indent=2))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.no_serve:
        return 0
    from app.__main__ import main as serve

    flags = ["--model", done["model"], "--collection", done["collection"], "--qdrant", location,
             "--data-dir", args.data_dir]
    return serve(flags + app_flags, after_start=switch_when_tuned(done["fine_tune"]) if done["fine_tune"] else None)


if __name__ == "__main__":
    sys.exit(main())
