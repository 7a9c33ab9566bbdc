"""A Hugging Face Space: its entry point (`app_file` in the README's front matter), and the folder to push.

On the Space, `python app/space.py` runs from the Space's root, so the root is put on the path first.
Configure it with Space variables and secrets: MODEL_DIR (a model dir in the Space, or a Hub model id),
DATA_DIR (`/data` with persistent storage: the default when it is writable), QDRANT_URL and QDRANT_API_KEY
for a Qdrant Cloud cluster, INDEX_DATASET (e.g. `zalando-datasets/fashion_mnist`) to build or finish the
collection at start (resumable: points already there are skipped).

A Space installs from a root `requirements.txt`, which this repository's fixed top level does not hold, so
`make space` (`python app/space.py --bundle dist/space --model models/fmnist-small`) writes the folder to push:
the packages, this README (its front matter configures the Space), a requirements.txt generated from
pyproject.toml, and the model dir's safetensors/JSON files.
"""

import argparse
import os
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PACKAGES = ("app", "indexer", "training")

from training.modeldir import model_files  # noqa: E402 (after the root is on the path)


def write_bundle(out: str | Path, model_dir: str | Path | None = None) -> Path:
    """The Space's files in `out` (replaced): code, README, requirements.txt, and the model dir if given."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyi", "*.pyc"))
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(ROOT / name, out / name)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (out / "requirements.txt").write_text(
        "# Written by `make space` from pyproject.toml. The CPU index gives a CPU Space torch's CPU wheel\n"
        "# (a GPU Space can drop the line to get the CUDA build).\n"
        "--extra-index-url https://download.pytorch.org/whl/cpu\n" + "\n".join(deps) + "\n"
    )
    if model_dir:
        model_dir = Path(model_dir)
        target = out / "models" / model_dir.name
        for name in model_files(model_dir):  # weights and configs (its surface encoder's too); never checkpoints
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model_dir / name, target / name)
        if not (target / "model.safetensors").is_file():
            raise FileNotFoundError(f"{model_dir} has no model.safetensors: train it first (make model)")
    return out


def index_if_asked(settings) -> None:
    """INDEX_DATASET set: build the collection the app will serve, or finish it, first (ids are deterministic)."""
    dataset = os.environ.get("INDEX_DATASET")
    if not dataset:
        return
    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index

    store = open_store(settings.collection, settings.location)
    try:
        report = build_index(Embedder(settings.model_dir), store, dataset)
        added, there, bad = report.indexed, report.skipped_existing, len(report.bad)
        print(f"index: {added} added, {there} already there, {bad} bad", flush=True)
    finally:
        store.close()  # the embedded engine is opened by one process/handle at a time: the app opens it next


def main() -> int:
    p = argparse.ArgumentParser(description="Run the Space, or write the folder to push to one (--bundle).")
    p.add_argument("--bundle", help="write the Space's files into this folder and exit")
    p.add_argument("--model", help="with --bundle: a model dir to include (models/<name>)")
    args, rest = p.parse_known_args()
    if args.bundle:
        print(write_bundle(args.bundle, args.model))
        return 0
    os.environ.setdefault("GRADIO_SERVER_NAME", "0.0.0.0")
    # Only Hugging Face's proxy reaches a Space's app: uvicorn may believe its X-Forwarded-Proto (https links), and
    # each visitor, not the proxy, gets the per-client allowance: the address that proxy appended to X-Forwarded-For,
    # never the entries a visitor wrote before it (app.access.client_address).
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "*")
    os.environ.setdefault("TRUSTED_HOPS", "1")
    if Path("/data").is_dir() and os.access("/data", os.W_OK):
        os.environ.setdefault("DATA_DIR", "/data")
    from app.__main__ import main as serve
    from app.__main__ import parse_settings

    index_if_asked(parse_settings(rest)[0])  # the app's own flags and environment: the same collection
    return serve(rest)


if __name__ == "__main__":
    sys.exit(main())
