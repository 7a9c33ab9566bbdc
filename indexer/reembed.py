"""A collection embedded again by another model, in place: every point's picture (a folder's file, a dataset's row or a
stored upload, indexer.sources) through the new model into a staging collection beside it, counted, then swapped in
(Store.swap_in). Until the swap the old collection answers as it did; a run stopped midway leaves it whole (the
staging collection is rebuilt from the start by the next run). What `app.collection` does once a folder's own model
has fine-tuned, while the backbone's collection is served.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from indexer.calibration import collection_figures
from indexer.embedder import Embedder
from indexer.factory import open_store
from indexer.sources import SourceError, resolve_image
from indexer.store import Store, StoreError
from training.images import BadImage

log = logging.getLogger(__name__)

KEPT = ("dataset", "image_profile", "sources")  # what a collection records about its pictures, not its model


def reembed(store: Store, embedder: Embedder, image_dir: Path, location: str | None = None, batch: int = 256,
            swapping=None, then=None) -> dict:
    """Replace `store`'s vectors by `embedder`'s, keeping every point's id and payload. A point whose picture can no
    longer be read (a file removed from the folder) is left out and reported by id. `swapping`: a lock held while
    the new vectors are swapped in and `then()` runs (the app: no query starts in between)."""
    start = time.perf_counter()
    meta = store.meta
    if not meta:
        raise StoreError(f"collection {store.collection!r} does not exist: nothing to embed again")
    staging = open_store(f"{store.collection}__reembedding", location, quantized=getattr(store, "quantized", False))
    try:
        staging.ensure({**{k: meta[k] for k in KEPT if k in meta}, **embedder.meta}, recreate=True)
        profile, _ = embedder.profile_for(meta)
        points, lost = [], []

        def put() -> None:
            images = [image for _, image in points]
            emb = embedder.embed(images, profile)
            payloads = [dict(p.payload, label_id=embedder.label_id(p.payload.get("label"))) for p, _ in points]
            staging.upsert([p.id for p, _ in points], emb.floats, emb.codes, payloads)
            points.clear()

        for hit in store.all_points(batch):
            try:
                points.append((hit, resolve_image(hit.payload, image_dir)))
            except (SourceError, BadImage, OSError) as e:
                lost.append(hit.id)
                log.warning("point %s is not embedded again: %s", hit.id, e)
            if len(points) >= batch:
                put()
        if points:
            put()
        staging.flush()
        expected = store.count() - len(lost)
        if staging.count() != expected:
            raise StoreError(f"the new vectors of {store.collection!r} number {staging.count()}, not {expected}; "
                             "the collection is unchanged: run it again")
        staging.optimize()
        staging.update_meta(collection_figures(staging, image_dir))
        with swapping or contextlib.nullcontext():
            store.swap_in(staging)
            if then is not None:
                then()
    finally:
        staging.close()
    log.info("collection %r embedded again by %s: %d points in %.1f s", store.collection, embedder.meta["model"],
             store.count(), time.perf_counter() - start)
    return {"points": store.count(), "lost": lost, "model": embedder.meta["model"],
            "seconds": round(time.perf_counter() - start, 1)}

