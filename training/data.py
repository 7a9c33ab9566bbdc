"""One loader for every consumer: a DatasetDict with `train`/`test`, an `image` column and a ClassLabel `label`.

Specs: a Hub dataset id (`cifar10`, `zalando-datasets/fashion_mnist`, ...), a local folder with one sub-folder
per class, or `fashion_mnist`, read from Debian's `dataset-fashion-mnist` files when they are installed.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset
from PIL import Image as PILImage

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_HUB = "zalando-datasets/fashion_mnist"
FASHION_MNIST_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Column names other datasets use for what we call `image` and `label`.
IMAGE_COLUMNS = ("image", "img", "picture", "photo")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label", "class", "category")


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST family's format) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_files_present(root: Path = FASHION_MNIST_DIR) -> bool:
    return all((root / name).is_file() for pair in _FILES.values() for name in pair)


def _idx_rows(root: str, split: str):
    images_file, labels_file = _FILES[split]
    images = read_idx(Path(root) / images_file)
    labels = read_idx(Path(root) / labels_file)
    for image, label in zip(images, labels, strict=True):
        yield {"image": _png(image), "label": int(label)}


def _png(array: np.ndarray) -> dict:
    buf = io.BytesIO()
    PILImage.fromarray(array, mode="L").save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def load_fashion_mnist_files(root: Path = FASHION_MNIST_DIR) -> DatasetDict:
    """Fashion-MNIST from the IDX files; `datasets` caches the Arrow table, so the second call is instant."""
    features = Features({"image": Image(), "label": ClassLabel(names=FASHION_MNIST_NAMES)})
    return DatasetDict(
        {
            split: Dataset.from_generator(
                _idx_rows, gen_kwargs={"root": str(root), "split": split}, features=features, split=split
            )
            for split in _FILES
        }
    )


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def _folder_rows(root: str, listing: str):
    """One row per file of each class sub-folder; a file that cannot be read or decoded, or a sub-folder that
    cannot be listed, becomes a row with its `error` (and no image), so the report is cached with the data."""
    from training.images import BadImage, open_image

    listed = json.loads(listing)
    for label, name in enumerate(listed["classes"]):
        folder = Path(root) if listed["flat"] else Path(root) / name
        try:
            found = folder.glob("*") if listed["flat"] else folder.rglob("*")
            files = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
        except OSError as e:
            yield {"image": None, "label": label, "path": name + "/", "error": f"cannot read the folder: {e}"}
            continue
        for path in files:
            rel = path.relative_to(root).as_posix()
            try:
                data = path.read_bytes()
                open_image(data)  # the decoder uploads go through: corrupt, truncated, not an image
            except (OSError, BadImage) as e:
                yield {"image": None, "label": label, "path": rel, "error": str(e) or type(e).__name__}
                continue
            yield {"image": {"bytes": data, "path": None}, "label": label, "path": rel, "error": None}


UNLABELLED = "unlabelled"  # the one label of a folder without class sub-folders


def load_folder(root: Path) -> tuple[Dataset, list[dict]]:
    """A folder with one sub-folder per class as a `train` Dataset (image, label, path relative to `root`), and the
    files skipped: each with its path and why. A folder of pictures without class sub-folders is one class,
    UNLABELLED (it can be indexed and searched, not trained on). The table is cached by `datasets`, keyed by the
    folder's listing (names, sizes, times), so adding a picture makes a new one."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    flat = not classes
    if flat:
        if not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
            raise ValueError(f"{root} holds neither class sub-folders nor pictures")
        classes = [UNLABELLED]
    stats = []
    for p in sorted(root.rglob("*")):
        try:
            st = p.stat()
            stats.append((p.relative_to(root).as_posix(), st.st_size, int(st.st_mtime)))
        except OSError:
            stats.append((p.relative_to(root).as_posix(), -1, 0))
    listing = json.dumps({"classes": classes, "flat": flat, "files": stats})
    features = Features({"image": Image(), "label": ClassLabel(names=classes), "path": Value("string"),
                         "error": Value("string")})
    table = Dataset.from_generator(_folder_rows, gen_kwargs={"root": str(root), "listing": listing},
                                   features=features, split="train")
    bad = [{"path": r["path"], "error": r["error"]} for r in table.select_columns(["path", "error"])
           if r["error"] is not None]
    if bad:
        log.warning("skipped %d file(s) of %s that are not readable images: %s", len(bad), root,
                    "; ".join(f"{b['path']} ({b['error']})" for b in bad[:20]) + (" …" if len(bad) > 20 else ""))
    good = table.filter(lambda e: e is None, input_columns="error") if bad else table
    return good.select_columns(["image", "label", "path"]), bad


def _normalise_columns(ds: DatasetDict) -> DatasetDict:
    columns = next(iter(ds.values())).column_names
    image_col = next((c for c in IMAGE_COLUMNS if c in columns), None)
    label_col = next((c for c in LABEL_COLUMNS if c in columns), None)
    if image_col is None or label_col is None:
        raise ValueError(
            f"cannot find an image and a label column among {columns}; "
            f"expected one of {IMAGE_COLUMNS} and one of {LABEL_COLUMNS}"
        )
    ds = ds.select_columns([image_col, label_col])
    if image_col != "image":
        ds = ds.rename_column(image_col, "image")
    if label_col != "label":
        ds = ds.rename_column(label_col, "label")
    if not isinstance(ds["train"].features["label"], ClassLabel):
        ds = ds.class_encode_column("label")
    return ds


def load_image_dataset(spec: str, *, test_size: float = 0.1, seed: int = 0) -> DatasetDict:
    """Load `spec` as a DatasetDict with `train` and `test` splits, `image` (PIL) and `label` (ClassLabel); its
    `skipped` lists the files of a folder that are not readable images (path and why)."""
    skipped: list[dict] = []
    if spec in ("fashion_mnist", "fashion-mnist"):
        if fashion_mnist_files_present():
            ds = load_fashion_mnist_files()
        else:
            log.info("%s has no Fashion-MNIST files; loading %s from the Hub", FASHION_MNIST_DIR, FASHION_MNIST_HUB)
            ds = load_dataset(FASHION_MNIST_HUB)
    elif Path(spec).is_dir():
        train, skipped = load_folder(Path(spec))
        ds = DatasetDict(train=train)  # with `path`: a folder's images are named by their file, not their row
    else:
        ds = load_dataset(spec)
    if not isinstance(ds, DatasetDict) or "train" not in ds:
        raise ValueError(f"{spec!r} has no train split")
    if not Path(spec).is_dir():
        ds = _normalise_columns(ds)
    if "test" not in ds:
        # Carve a seeded, label-stratified test split out of train so every spec has both.
        stratify = "label" if len(ds["train"].features["label"].names) > 1 else None
        split = ds["train"].train_test_split(test_size=test_size, seed=seed, stratify_by_column=stratify)
        ds = DatasetDict(train=split["train"], test=split["test"])
    out = DatasetDict(train=ds["train"], test=ds["test"])
    out.skipped = skipped
    return out


def label_names(ds: DatasetDict) -> list[str]:
    return list(ds["train"].features["label"].names)
