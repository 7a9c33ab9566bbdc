"""The floor every model must clear: raw pixels compared by cosine. Evaluation and the benchmarks report it beside
the product's figures; a collection measures it when it is indexed (`floor_check`), and the page says so when the
model that built it groups the collection's labels worse than its raw pixels do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from indexer.sources import SourceError, resolve_image
from indexer.store import Store
from training.data import UNLABELLED
from training.images import BadImage

FLOOR_SAMPLE = 1000  # labelled pictures of a collection the floor is measured on
COLOUR_SIDE = 32  # a collection's floor: 32×32 RGB thumbnails


def pixel_vectors(images, size: int, mode: str = "L", centred: bool = False,
                  resample=Image.Resampling.BICUBIC) -> np.ndarray:
    """Raw pixels: each picture in `mode` ("L" or "RGB") at size×size, flattened, optionally less its mean,
    L2-normalised (cosine is then a dot product)."""
    out = np.stack([np.asarray(im.convert(mode).resize((size, size), resample), dtype=np.float32).ravel()
                    for im in images])
    if centred:
        out -= out.mean(1, keepdims=True)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def colour_floor(images) -> np.ndarray:
    """A collection's floor: small colour thumbnails (COLOUR_SIDE px, RGB, bilinear), less their mean."""
    return pixel_vectors(images, COLOUR_SIDE, "RGB", centred=True, resample=Image.Resampling.BILINEAR)


def label_precision_at_10(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Each picture's 10 nearest others (cosine) among `vectors`: the share with its label."""
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    k = min(10, len(vectors) - 1)
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return float(np.mean(labels[nearest] == labels[:, None]))


def floor_check(store: Store, image_dir: Path, sample: int = FLOOR_SAMPLE) -> dict | None:
    """Label precision@10 among a seeded sample of the collection's labelled pictures, by their stored float vectors
    and by `colour_floor`; None for a collection with fewer than two labels (nothing to compare)."""
    hits = [h for h in store.retrieve(store.sample_ids(sample), with_vectors=["float"])
            if h.float_vector is not None and h.payload.get("label") not in (None, UNLABELLED)]
    kept, images = [], []
    for h in hits:
        try:
            images.append(resolve_image(h.payload, image_dir))
            kept.append(h)
        except (SourceError, BadImage, OSError):
            continue
    labels = np.array([h.payload["label"] for h in kept])
    if len(set(labels)) < 2 or len(kept) < 20:
        return None
    model = np.stack([h.float_vector for h in kept]).astype(np.float32)
    return {"model_p_at_10": round(label_precision_at_10(model, labels), 4),
            "pixels_p_at_10": round(label_precision_at_10(colour_floor(images), labels), 4), "sample": len(kept)}
