"""`python -m indexer upgrade`: convert a collection built before the ±1 code layout from its stored vectors.

No model runs and no image is read: every point is copied with its float vector, its code (0/1 bytes become ±1,
with the `code` payload key) and its payload into a staging collection beside it, counted, and only then put in
the old one's place. A run stopped midway leaves the old collection as it was (or, on the embedded engine, its
shard set aside as `shard.old`, put back by the next run); running it again starts over.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from indexer.config import resolve_location
from indexer.edge import EdgeStore
from indexer.factory import open_store
from indexer.store import LAYOUT, Store, StoreError

log = logging.getLogger(__name__)
BATCH = 2000


def _copy(source: Store, target: Store) -> int:
    ids, floats, codes, payloads, copied = [], [], [], [], 0

    def put():
        target.upsert(ids, np.stack(floats), np.stack(codes), payloads)
        return len(ids)

    for h in source.all_points(BATCH, with_vectors=True):
        ids.append(h.id)
        floats.append(h.float_vector)
        codes.append(h.code_vector)
        payloads.append({k: v for k, v in h.payload.items() if k != "code"})
        if len(ids) == BATCH:
            copied += put()
            ids, floats, codes, payloads = [], [], [], []
    if ids:
        copied += put()
    target.flush()
    return copied


def upgrade(collection: str, location: str | None = None) -> dict:
    """Convert `collection` to the current layout in place; a collection already in it is left alone."""
    staging_name = f"{collection}__upgrading"
    _recover(Path(resolve_location(location)) / collection)
    store = open_store(collection, location)
    try:
        meta = store.meta
        if not meta:
            raise StoreError(f"collection {collection!r} does not exist: nothing to upgrade")
        points = store.count()
        if meta.get("layout", 1) == LAYOUT:
            return {"collection": collection, "points": points, "upgraded": False}
        staging = open_store(staging_name, location, quantized=getattr(store, "quantized", False))
        try:
            staging.ensure({k: v for k, v in meta.items() if k not in ("layout", "float_index")}, recreate=True)
            copied = _copy(store, staging)
            if copied != points or staging.count() != points:
                raise StoreError(f"the copy of {collection!r} holds {staging.count()} points, not {points}; the "
                                 "collection is unchanged: run the upgrade again")
            staging.optimize()
            if isinstance(store, EdgeStore):
                staging.close()
                store.reload(lambda: _swap_folders(store.root, staging.root))
            else:  # a server: the old collection is replaced by a copy of the staging one
                store.drop()
                store.ensure({k: v for k, v in meta.items() if k != "layout"})
                _copy(staging, store)
                staging.drop()
        finally:
            staging.close()
        log.info("collection %r: %d points converted to layout %d", collection, points, LAYOUT)
        return {"collection": collection, "points": store.count(), "upgraded": True}
    finally:
        store.close()


def _swap_folders(root, staging_root) -> None:
    """The staged shard and metadata into the collection's folder; the metadata last, so that a stop before it
    leaves the old layout's metadata, which the next run converts again."""
    os.replace(root / "shard", root / "shard.old")
    os.replace(staging_root / "shard", root / "shard")
    os.replace(staging_root / "meta.json", root / "meta.json")
    shutil.rmtree(root / "shard.old")
    shutil.rmtree(staging_root, ignore_errors=True)


def _recover(root: Path) -> None:
    """On the embedded engine, a run stopped between setting the old shard aside and putting the new one in: the
    old one goes back."""
    if (root / "shard.old").is_dir() and not (root / "shard").is_dir():
        os.replace(root / "shard.old", root / "shard")
