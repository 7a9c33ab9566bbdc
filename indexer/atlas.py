"""A map of the collection: a sample of its float vectors projected to two dimensions, computed once per version of
the collection and kept in the collection's own metadata (`map`), so every app that serves it shows the same map.

The projection is t-SNE (scikit-learn, Barnes–Hut) over the sample's first 50 PCA directions: it keeps neighbours
together, which is what a map for finding things needs (PCA alone draws the labels over one another). t-SNE cannot
place a new point, so a vector that is not in the sample (a query, a result) is placed where its nearest sampled
points are (`locate`: the mean place of its `NEIGHBOURS` nearest by cosine).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time

import numpy as np

log = logging.getLogger(__name__)

SAMPLE = 2000  # points on the map: enough to see every label's region, few enough to read at phone width
NEIGHBOURS = 5  # sampled points whose mean place is a new vector's place
PAGE = 10_000  # points read per scroll


def all_ids(store) -> list[str]:
    """Every point id of the collection (no payloads, no vectors), in pages."""
    ids, offset = [], None
    while True:
        page, offset = store.scroll(limit=PAGE, offset=offset, payload=False)
        ids += [h.id for h in page]
        if offset is None or not page:
            return ids


def version_of(ids, model_sha256: str | None) -> str:
    """What the map is a map of: the collection's point ids and the model that embedded them."""
    digest = hashlib.sha256(str(model_sha256).encode())
    for pid in sorted(ids):
        digest.update(pid.encode())
    return digest.hexdigest()[:16]


def project(floats: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D places of these vectors, scaled into [0, 1] on both axes: t-SNE over 50 PCA directions (PCA alone for
    fewer than 20 points, where t-SNE has nothing to work with)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(floats)
    if n < 3:
        return np.full((n, 2), 0.5)
    reduced = PCA(min(50, n - 1, floats.shape[1]), random_state=seed).fit_transform(floats)
    if n < 20:
        xy = reduced[:, :2] if reduced.shape[1] >= 2 else np.c_[reduced[:, 0], np.zeros(n)]
    else:
        xy = TSNE(2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=seed).fit_transform(reduced)
    span = np.ptp(xy, axis=0)
    return (xy - xy.min(0)) / np.where(span > 0, span, 1)


def compute(store, sample: int = SAMPLE, seed: int = 0) -> dict:
    """The map of the collection as it is now: its version, the sampled points (id, label, place) and the time
    it took."""
    t0 = time.perf_counter()
    ids = sorted(all_ids(store))
    rng = np.random.default_rng(seed)
    wanted = [ids[i] for i in sorted(rng.choice(len(ids), min(sample, len(ids)), replace=False))]
    found = {h.id: h for h in store.retrieve(wanted, with_vectors=["float"])}  # the sample's vectors only
    chosen = [found[i] for i in wanted if i in found]
    xy = project(np.stack([h.float_vector for h in chosen]).astype(np.float32), seed) if chosen else np.zeros((0, 2))
    return {"version": version_of(ids, store.meta.get("model_sha256")), "points": len(ids),
            "method": "t-SNE over 50 PCA directions",
            "ids": [h.id for h in chosen], "labels": [h.payload.get("label") for h in chosen],
            "xy": np.round(xy, 4).tolist(), "seconds": round(time.perf_counter() - t0, 2)}


def is_current(store, stored_map: dict | None) -> bool:
    """Whether the map is of the collection as it is now (the same points, embedded by the same model)."""
    if not stored_map:
        return False
    return stored_map.get("version") == version_of(all_ids(store), store.meta.get("model_sha256"))


def refresh(store, writes=None) -> dict:
    """The collection's map, computed again when the collection changed since, and stored with it. `writes`: the
    lock the collection's writers hold (the app's): the map is stored under it, and only if no write came while it
    was computed (else computed again), so that it never stands for points it was not made of."""
    current = store.meta.get("map")
    if is_current(store, current):
        return current
    while True:
        fresh = compute(store)
        with writes or contextlib.nullcontext():
            if is_current(store, fresh):
                store.update_meta({"map": fresh})
                break
    log.info("map of %s points (%s sampled) in %.1f s", fresh["points"], len(fresh["ids"]), fresh["seconds"])
    return fresh


def locate(vectors: np.ndarray, sampled: np.ndarray, xy: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Places on the map of vectors not in its sample: the mean place of each one's nearest sampled points (cosine;
    `sampled` the sample's L2-normalised float vectors, `xy` their places)."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    near = np.argsort(-(vectors @ sampled.T), axis=1)[:, :neighbours]
    return np.asarray(xy)[near].mean(axis=1)
