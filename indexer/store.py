"""How vectors live in Qdrant, whichever engine holds them: the schema, the errors, and the search plans.

Named vectors: `float` (L2-normalised features, Cosine) and `code` (the binary code as ±1, Dot distance, binary
quantization: one bit per bit in RAM; Hamming = (n_bits − dot) / 2). Payload: `label` and `code` (the code as hex;
both keyword-indexed: filters and Hamming ties use them), `label_id`, `source` (dataset/split/filename or row, or
a stored file), `sha256`. The collection's metadata records the model that built it and the layout.

The engines (`indexer.edge.EdgeStore`, `indexer.server.ClientStore`) answer one `Nearest` request at a time; this
module turns each metric's rule (`indexer.ranking`) into those requests.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer import ranking
from indexer.ranking import METRICS  # noqa: F401  (re-exported: the metrics a store answers)

LAYOUT = 2  # 2: codes as ±1 with Dot distance and a `code` payload key; 1 (unrecorded): 0/1 bytes, Manhattan
TIE_LIMIT = 10_000  # points tied at a Hamming cut-off that a prefetch orders exactly by cosine
BALL_RADIUS = 2  # a tie at up to this many bits is a filter on the codes within it; beyond, a prefetch
SPARE = 16  # extra points fetched at a cut so that equal cosines are ordered by id
NAMESPACE = uuid.UUID("6f1c1a52-8f5e-4b8e-9b43-2b8d3f9a7c10")


class StoreError(RuntimeError):
    """A problem with the collection that the user can fix; the message says how."""


class IncompatibleCollection(StoreError):
    pass


class StoreUnavailable(StoreError):
    pass


def point_id(source: dict) -> str:
    """Deterministic id of an image's source, so indexing the same thing twice adds nothing."""
    return str(uuid.uuid5(NAMESPACE, json.dumps(source, sort_keys=True)))


@dataclass
class Hit:
    id: str
    score: float
    payload: dict
    float_vector: np.ndarray | None = None
    code_vector: np.ndarray | None = None  # 0/1 bytes, whatever the layout
    cosine: float | None = None  # a Hamming hit's cosine, which orders its tie


@dataclass(frozen=True)
class Filters:
    labels: tuple[str, ...] = ()  # only these labels
    split: str | None = None  # only this dataset split
    exclude: tuple[str, ...] = ()  # never these ids
    codes: tuple[str, ...] = ()  # only these codes (`ranking.code_key`)
    only: tuple[str, ...] = ()  # only these ids


@dataclass(frozen=True)
class Nearest:
    """One request to an engine: the `limit` points nearest `vector` in the named vector `using`."""

    using: str  # "float" or "code"
    vector: tuple[float, ...]
    limit: int
    filters: Filters = field(default_factory=Filters)
    offset: int = 0
    threshold: float | None = None  # the least score (cosine, or dot of ±1 codes)
    exact: bool = False
    prefetch: Nearest | None = None  # rank only what this request returns
    payload: bool = True


def check_compatible(existing: dict, wanted: dict, collection: str) -> None:
    """A collection answers for one model and one layout: refuse another model, bit count, vector size, views or
    an older layout, naming what to do."""
    if existing.get("layout", 1) != LAYOUT:
        raise IncompatibleCollection(
            f"collection {collection!r} keeps its codes in an older layout (0/1 bytes compared by Manhattan "
            "distance), which this version does not search; convert it from its stored vectors with "
            f"`python -m indexer upgrade --collection {collection}` or rebuild it (--recreate)"
        )
    # A collection from before views were recorded was embedded from the image alone.
    existing, wanted = {"views": "image", **existing}, {"views": "image", **wanted}
    for key, what in (
        ("model_sha256", "model"), ("n_bits", "bit count"), ("float_dim", "float vector size"),
        ("views", "embedding views"),
    ):
        if key in existing and key in wanted and existing[key] != wanted[key]:
            raise IncompatibleCollection(
                f"collection {collection!r} was built by {existing.get('model')} ({what} {existing[key]}), not by "
                f"{wanted.get('model')} ({what} {wanted[key]}); search it with the model that built it"
                + (f" and EMBED_VIEWS={existing[key]}" if key == "views" else "")
                + ", or index into another collection (--collection) or rebuild it (--recreate)"
            )


def point_vectors(floats: np.ndarray, codes: np.ndarray) -> list[dict]:
    """The named vectors of points: 0/1 codes become ±1."""
    signs = ranking.signs(codes)
    return [{"float": f.tolist(), "code": c.tolist()} for f, c in zip(floats, signs, strict=True)]


def with_code_keys(codes: np.ndarray, payloads: list[dict]) -> list[dict]:
    return [dict(p, code=ranking.code_key(c)) for c, p in zip(codes, payloads, strict=True)]


def to_hit(p) -> Hit:
    """A point as either engine returns it (scored or not, with or without vectors) as a Hit."""
    vec = p.vector
    vec = vec if isinstance(vec, dict) else {}
    fv, cv = (np.asarray(vec[name], dtype=np.float32) if name in vec else None for name in ("float", "code"))
    score = getattr(p, "score", 0.0)
    return Hit(id=str(p.id), score=float(score) if score is not None else 0.0, payload=dict(p.payload or {}),
               float_vector=fv, code_vector=None if cv is None else ranking.bits(cv))


class Store:
    """What both engines share: the search plans, the compatibility check, paging over ids."""

    collection: str

    # --- engine-specific primitives -------------------------------------------------------------
    def _exists(self) -> bool: ...
    def _create(self, meta: dict) -> None: ...
    def _read_meta(self) -> dict: ...
    def update_meta(self, changes: dict) -> None: ...
    def upsert(self, ids: list[str], floats: np.ndarray, codes: np.ndarray, payloads: list[dict]) -> None: ...
    def flush(self) -> None: ...
    def optimize(self) -> None: ...
    def _query(self, request: Nearest) -> list[Hit]: ...
    def _query_batch(self, requests: list[Nearest]) -> list[list[Hit]]: ...
    def count(self, labels: list[str] | None = None) -> int: ...
    def label_counts(self) -> dict[str, int]: ...
    def retrieve(self, ids: list[str], with_vectors: bool | list[str] = False) -> list[Hit]: ...
    def delete(self, ids: list[str]) -> None: ...
    def scroll(self, limit: int, offset: Any = None, with_vectors: bool = False,
               files_only: bool = False, payload: bool = True) -> tuple[list[Hit], Any]: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...

    # --- the collection -------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        return self._read_meta() if self._exists() else {}

    def ensure(self, meta: dict, recreate: bool = False) -> dict:
        """Create the collection for `meta`'s model, or check that the existing one was built by it."""
        if recreate and self._exists():
            self.drop()
        if not self._exists():
            meta = dict(meta, layout=LAYOUT)
            self._create(meta)
            return meta
        existing = self._read_meta()
        check_compatible(existing, meta, self.collection)
        return existing

    def require(self, meta: dict) -> dict:
        """Open an existing collection for searching with `meta`'s model; refuse a mismatch."""
        if not self._exists():
            raise StoreError(
                f"collection {self.collection!r} does not exist yet; build it with "
                f"`python -m indexer build --collection {self.collection}`"
            )
        existing = self._read_meta()
        check_compatible(existing, meta, self.collection)
        return existing

    def all_points(self, batch: int = 1000, files_only: bool = False, with_vectors: bool = False,
                   payload: bool = True):
        """Every point (or every stored upload: `files_only`), in batches of `batch`."""
        offset = None
        while True:
            hits, offset = self.scroll(batch, offset, with_vectors=with_vectors, files_only=files_only,
                                       payload=payload)
            yield from hits
            if offset is None:
                return

    def file_points(self, batch: int = 1000):
        """Every point whose image is a stored file (an upload), with its payload."""
        return self.all_points(batch, files_only=True)

    def sample_ids(self, sample: int, seed: int = 0) -> list[str]:
        """`sample` point ids drawn at random, seeded, from all of them in id order."""
        ids = sorted(h.id for h in self.all_points(10_000, payload=False))
        return ids if sample >= len(ids) else random.Random(seed).sample(ids, sample)

    def duplicate_pairs(self, threshold: float, sample: int = 1000, limit: int = 5,
                        seed: int = 0) -> list[tuple[str, str, float]]:
        """Pairs (a, b, cosine), b among the `limit` nearest of a, cosine ≥ `threshold`, for `sample` points drawn
        at random (seeded: the same sample on both engines, and from one call to the next)."""
        ids = self.sample_ids(sample, seed)
        points = [p for p in self.retrieve(ids, with_vectors=["float"]) if p.float_vector is not None]
        requests = [Nearest("float", tuple(p.float_vector.tolist()), limit + 1, threshold=threshold, payload=False)
                    for p in points]
        pairs = []
        for p, hits in zip(points, self._query_batch(requests), strict=True):
            pairs += [(p.id, h.id, h.score) for h in hits if h.id != p.id]
        return pairs

    # --- search ---------------------------------------------------------------------------------
    def search(
        self,
        metric: str,
        float_vector: np.ndarray,
        code: np.ndarray,
        k: int = 10,
        offset: int = 0,
        labels: list[str] | None = None,
        threshold: float | None = None,
        oversampling: int = ranking.OVERSAMPLING,
        exact: bool = False,
        split: str | None = None,
        exclude: list[str] | None = None,
    ) -> list[Hit]:
        """The k nearest points by `metric` (`indexer.ranking`'s rules), best first, after skipping `offset`.

        `threshold`: the least cosine similarity for cosine and hamming+rerank, the most Hamming distance
        for hamming. `labels`: only points with one of these labels (a payload filter inside Qdrant);
        `split`: only points from that dataset split (the evaluation's train-only database); `exclude`: never
        these ids (a stored image searched by its own vectors leaves itself out). Hamming hits score their
        distance in bits.
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        want = k + offset
        fvec = tuple(float(v) for v in float_vector)
        filters = Filters(tuple(labels or ()), split, tuple(exclude or ()))
        if metric == "cosine":
            return self._query(Nearest("float", fvec, k, filters, offset, threshold, exact))
        code = np.asarray(code, dtype=np.uint8)
        if metric == "hamming":
            hits = self._hamming(fvec, code, want, filters, exact, threshold)
        else:
            hits = self._rerank(fvec, code, max(want * oversampling, want), want, filters, exact)
            hits = [h for h in hits if threshold is None or h.score >= threshold]
        return hits[offset:want]

    def _code_scan(self, code: np.ndarray, limit: int, filters: Filters, **kw) -> list[Hit]:
        """The `limit` nearest codes, scored by their exact Hamming distance."""
        hits = self._query(Nearest("code", tuple(ranking.signs(code).tolist()), limit, filters, **kw))
        for h in hits:
            h.score = ranking.distance_of_dot(h.score, len(code))
        return hits

    def _scan_to(self, code: np.ndarray, n: int, filters: Filters, threshold: float | None = None):
        """The nearest codes up to the n-th and somewhat beyond: (d, hits, complete). d: the n-th nearest's distance
        (None when fewer than n points are in reach: then hits are all of them); complete: every point within d
        is among hits. `threshold`: the most distance in bits."""
        limit = 2 * n + SPARE
        max_dot = None if threshold is None else ranking.dot_of_distance(threshold + 0.5, len(code))
        hits = self._code_scan(code, limit, filters, threshold=max_dot, payload=False)
        if len(hits) < n:
            return None, hits, True
        d = int(sorted(h.score for h in hits)[n - 1])
        return d, hits, len(hits) < limit or max(h.score for h in hits) > d

    def _by_cosine_within(self, fvec, code: np.ndarray, radius: int, limit: int, filters: Filters,
                          exact: bool) -> Nearest:
        """The request for the `limit` points with the highest cosine among those whose code is within `radius`
        bits: a filter on the codes in that ball when it is small, else a prefetch of up to TIE_LIMIT points."""
        if radius <= BALL_RADIUS:
            return Nearest("float", fvec, limit, replace(filters, codes=tuple(ranking.ball_keys(code, radius))),
                           exact=True)
        dot = ranking.dot_of_distance(radius + 0.5, len(code))
        prefetch = Nearest("code", tuple(ranking.signs(code).tolist()), TIE_LIMIT, filters, threshold=dot)
        return Nearest("float", fvec, limit, filters, exact=exact, prefetch=prefetch)

    def _hamming(self, fvec, code, want: int, filters: Filters, exact: bool, threshold: float | None) -> list[Hit]:
        """By distance, then cosine, then id. First the likely case: at least `want` points share the query's code
        (d = 0), and the answer is the best by cosine among them. Else a scan of the nearest codes gives the
        cut-off distance d; the points within d, when the scan holds them all, else those nearer than d and the
        best by cosine of those tied at d (a filter or a prefetch), are scored by cosine inside the engine."""
        same = self._query(self._by_cosine_within(fvec, code, 0, want + SPARE, filters, exact))
        if len(same) >= want:
            return _by_distance_then_cosine(same, {h.id: 0 for h in same})
        d, scan, complete = self._scan_to(code, want, filters, threshold)
        distance = {h.id: h.score for h in scan if d is None or h.score < d or (complete and h.score == d)}
        requests = [Nearest("float", fvec, len(distance), replace(filters, only=tuple(distance)), exact=True)]
        if not complete:  # the tie at d goes on beyond the scan
            others = replace(filters, exclude=filters.exclude + tuple(distance))
            requests.append(self._by_cosine_within(fvec, code, d, want - len(distance) + SPARE, others, exact))
        hits = [h for answer in self._query_batch([r for r in requests if r.limit]) for h in answer]
        return _by_distance_then_cosine(hits, {h.id: d for h in hits} | distance)

    def _rerank(self, fvec, code, candidates: int, want: int, filters: Filters, exact: bool) -> list[Hit]:
        """Every point within the Hamming distance r of the `candidates`-th nearest code, by cosine. First the
        likely case: `candidates` points share the query's code (r = 0)."""
        same = self._query(self._by_cosine_within(fvec, code, 0, max(candidates, want + SPARE), filters, exact))
        if len(same) >= candidates:
            return _by_cosine(same)[:want]
        r, scan, complete = self._scan_to(code, candidates, filters)
        if r is None:  # the whole (filtered) collection is within reach
            return _by_cosine(self._query(Nearest("float", fvec, want + SPARE, filters, exact=True)))
        if complete:
            within = tuple(h.id for h in scan if h.score <= r)
            return _by_cosine(self._query(Nearest("float", fvec, want + SPARE, replace(filters, only=within),
                                                  exact=True)))[:want]
        return _by_cosine(self._query(self._by_cosine_within(fvec, code, r, want + SPARE, filters, exact)))[:want]


def _by_cosine(hits: list[Hit]) -> list[Hit]:
    """Higher cosine first, then id: equal cosines (the same image stored twice) in a fixed order."""
    return sorted(hits, key=lambda h: (-h.score, h.id))


def _by_distance_then_cosine(hits: list[Hit], distance: dict[str, float]) -> list[Hit]:
    """Hits scored by cosine, rescored by their distance in bits and ordered by distance, cosine, id."""
    for h in hits:
        h.cosine, h.score = h.score, float(distance[h.id])
    return sorted(hits, key=lambda h: (h.score, -h.cosine, h.id))
