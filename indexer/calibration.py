""""Unlike the collection": how alike the collection's own images are to their nearest neighbour, measured at
indexing, and whether a query's nearest image falls below that."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.floor import floor_check
from indexer.store import Store

CALIBRATION_SAMPLE = 500  # stored images whose nearest neighbours calibrate "unlike the collection"
UNLIKE_PERCENTILE = 1  # a query is unlike the collection when its nearest image is less alike than this share's


def calibrate(store: Store, sample: int = CALIBRATION_SAMPLE) -> dict:
    """How alike the collection's own images are to their nearest neighbour (cosine of the float vectors), over a
    sample: a query whose nearest image scores below the low percentile is unlike anything stored."""
    hits, _ = store.scroll(limit=sample, with_vectors=True)
    nearest = []
    for h in hits:
        others = [n for n in store.search("cosine", h.float_vector, np.zeros(1), k=2) if n.id != h.id]
        if others:
            nearest.append(others[0].score)
    if not nearest:
        return {}
    return {"nearest_cosine": {f"p{q:02d}": round(float(np.percentile(nearest, q)), 4)
                               for q in (UNLIKE_PERCENTILE, 5, 50)}, "sample": len(nearest)}


def collection_figures(store: Store, image_dir: Path) -> dict:
    """What a collection records once its vectors change (new images, another model): how alike its images are to
    their nearest (`calibrate`) and the raw-pixel floor (indexer.floor; `image_dir`: where stored uploads are)."""
    return {"calibration": calibrate(store), "floor": floor_check(store, image_dir)}


def unlike_collection(nearest_cosine: float | None, meta: dict) -> dict:
    """Whether a query is unlike the collection: its nearest stored image (cosine) is less alike than all but
    UNLIKE_PERCENTILE % of the collection's own images are to theirs (calibrated at indexing)."""
    floor = ((meta.get("calibration") or {}).get("nearest_cosine") or {}).get(f"p{UNLIKE_PERCENTILE:02d}")
    if nearest_cosine is not None:
        nearest_cosine = round(float(nearest_cosine), 4)  # as recorded: the floor has four decimals too
    if floor is None or nearest_cosine is None:
        return {"unlike": None, "nearest_cosine": nearest_cosine, "calibrated_floor": floor}
    return {"unlike": nearest_cosine < floor, "nearest_cosine": nearest_cosine, "calibrated_floor": floor}


# --- single images: uploads into the collection -----------------------------------------------------------
