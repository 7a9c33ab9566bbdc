"""`python -m indexer upgrade`: convert a collection from its stored vectors, in place: one built before the ±1 code
layout, or (with `--model`) one whose codes that model's weights made before its instance hyperplanes
(training.codes: the instance bits are then derived again from each point's float vector).

No model runs and no image is read: every point is copied with its float vector, its code (0/1 bytes become ±1,
with the `code` payload key; derived again for a new code length) and its payload into a staging collection beside
it, counted, and only then put in the old one's place. A run stopped midway leaves the old collection as it was
(or, on the embedded engine, its shard set aside as `shard.old`, put back by the next run); running it again starts
over.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

from indexer.factory import open_store
from indexer.store import LAYOUT, StoreError, copy_points

log = logging.getLogger(__name__)


def _recoding(meta: dict, model_dir: str | None):
    """(the new code length, the recode function), or (None, None) when the collection's codes stay as they are."""
    if model_dir is None:
        return None, None
    from transformers import PretrainedConfig

    from training.codes import code_length, recode_stored
    from training.modeldir import fingerprint

    config = PretrainedConfig(**json.loads((Path(model_dir) / "config.json").read_text()))
    bits = code_length(config)
    if meta.get("n_bits") == bits:
        return None, None
    if meta.get("model_sha256") != fingerprint(Path(model_dir)):
        raise StoreError(f"collection {meta.get('model')!r}'s points were not made by {model_dir}'s weights: its "
                         "codes cannot be derived again; rebuild it with that model (--recreate)")
    return bits, partial(recode_stored, config)


def upgrade(collection: str, location: str | None = None, model_dir: str | None = None) -> dict:
    """Convert `collection` to the current layout (and `model_dir`'s code length) in place; a collection already
    in them is left alone."""
    staging_name = f"{collection}__upgrading"
    store = open_store(collection, location)
    try:
        meta = store.meta
        if not meta:
            raise StoreError(f"collection {collection!r} does not exist: nothing to upgrade")
        points = store.count()
        bits, recode = _recoding(meta, model_dir)
        if meta.get("layout", 1) == LAYOUT and recode is None:
            return {"collection": collection, "points": points, "upgraded": False}
        staging = open_store(staging_name, location, quantized=getattr(store, "quantized", False))
        try:
            kept = {k: v for k, v in meta.items() if k not in ("layout", "float_index")}
            staging.ensure(dict(kept, n_bits=bits or meta["n_bits"]), recreate=True)
            copied = copy_points(store, staging, recode=recode)
            if copied != points or staging.count() != points:
                raise StoreError(f"the copy of {collection!r} holds {staging.count()} points, not {points}; the "
                                 "collection is unchanged: run the upgrade again")
            staging.optimize()
            store.swap_in(staging)
        finally:
            staging.close()
        log.info("collection %r: %d points converted to layout %d, %s-bit codes", collection, points, LAYOUT,
                 bits or meta["n_bits"])
        recoded = {"n_bits": bits} if bits else {}
        return {"collection": collection, "points": store.count(), "upgraded": True, **recoded}
    finally:
        store.close()
