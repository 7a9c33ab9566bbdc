"""`python -m indexer upgrade`: convert a collection built before the ±1 code layout from its stored vectors.

No model runs and no image is read: every point is copied with its float vector, its code (0/1 bytes become ±1,
with the `code` payload key) and its payload into a staging collection beside it, counted, and only then put in
the old one's place. A run stopped midway leaves the old collection as it was (or, on the embedded engine, its
shard set aside as `shard.old`, put back by the next run); running it again starts over.
"""

from __future__ import annotations

import logging

from indexer.factory import open_store
from indexer.store import LAYOUT, StoreError, copy_points

log = logging.getLogger(__name__)


def upgrade(collection: str, location: str | None = None) -> dict:
    """Convert `collection` to the current layout in place; a collection already in it is left alone."""
    staging_name = f"{collection}__upgrading"
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
            copied = copy_points(store, staging)
            if copied != points or staging.count() != points:
                raise StoreError(f"the copy of {collection!r} holds {staging.count()} points, not {points}; the "
                                 "collection is unchanged: run the upgrade again")
            staging.optimize()
            store.swap_in(staging)
        finally:
            staging.close()
        log.info("collection %r: %d points converted to layout %d", collection, points, LAYOUT)
        return {"collection": collection, "points": store.count(), "upgraded": True}
    finally:
        store.close()
