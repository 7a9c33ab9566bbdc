"""From a point's payload back to its image: a dataset row or a stored file, never outside the data folder."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image

from training.data import load_image_dataset
from training.images import open_image


class SourceError(ValueError):
    pass


@lru_cache(maxsize=8)
def _dataset(spec: str):
    return load_image_dataset(spec)


def safe_path(root: Path, rel: str) -> Path:
    """`root / rel`, refusing anything that would leave `root` (absolute paths, `..`, symlinks out)."""
    if not rel:
        raise SourceError("refusing an empty image reference: it names no file")
    root = root.resolve()
    path = (root / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(root):
        raise SourceError(f"refusing image reference {rel!r}: it points outside {root}")
    return path


def resolve_image(payload: dict, image_dir: Path) -> Image.Image:
    """The picture a payload names, decoded as an upload is (training.images.open_image: BadImage if unusable);
    `training.images.to_rgb` then shows it as the person sees their file."""
    source = payload.get("source") or {}
    if "file" in source:
        path = safe_path(image_dir, str(source["file"]))
        if not path.is_file():
            raise SourceError(f"stored image {source['file']} is missing from {image_dir}")
        return open_image(path.read_bytes())
    if {"dataset", "filename"} <= source.keys():  # a file of an image folder
        path = safe_path(Path(str(source["dataset"])), str(source["filename"]))
        if not path.is_file():
            raise SourceError(f"{source['filename']} is no longer in {source['dataset']}")
        return open_image(path.read_bytes())
    if {"dataset", "split", "row"} <= source.keys():
        return _dataset(str(source["dataset"]))[str(source["split"])][int(source["row"])]["image"]
    raise SourceError(f"payload has no image reference: {source!r}")
