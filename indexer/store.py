"""How vectors live in Qdrant: one schema, two engines.

- `EdgeStore`: the Qdrant engine in-process (`qdrant-edge-py`), a folder on disk. The default.
- `ClientStore`: `qdrant-client`, talking to a Qdrant server (`url`) or, for tests, its own local mode.

Named vectors: `float` (L2-normalised features, Cosine) and `code` (n_bits uint8 0/1, Manhattan, which on 0/1
vectors is the Hamming distance). Payload: `label` (name, keyword-indexed: what filters use), `label_id`,
`source` (dataset/split/row or a stored file), `sha256`. The collection records the model that built it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METRICS = ("cosine", "hamming", "hamming+rerank")
METRIC_HELP = {
    "cosine": "cosine similarity of the float features (1 = same direction)",
    "hamming": "Hamming distance between the binary codes, in bits (0 = same code); ties broken by cosine",
    "hamming+rerank": "the images within the Hamming radius of the k×oversampling nearest codes, re-ranked by cosine",
}
TIE_LIMIT = 10_000  # points tied at a Hamming cut-off that are ordered exactly by cosine
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
    code_vector: np.ndarray | None = None


def check_compatible(existing: dict, wanted: dict, collection: str) -> None:
    """A collection answers for one model: refuse another model, bit count, vector size or views, naming both."""
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


class Store:
    """What both engines share: the schema's search plans and the compatibility check."""

    collection: str

    # --- engine-specific primitives -------------------------------------------------------------
    def _exists(self) -> bool: ...
    def _create(self, meta: dict) -> None: ...
    def _read_meta(self) -> dict: ...
    def update_meta(self, changes: dict) -> None: ...
    def upsert(self, ids: list[str], floats: np.ndarray, codes: np.ndarray, payloads: list[dict]) -> None: ...
    def flush(self) -> None: ...
    def optimize(self) -> None: ...
    def _query(self, plan: dict) -> list[Hit]: ...
    def count(self, labels: list[str] | None = None) -> int: ...
    def label_counts(self) -> dict[str, int]: ...
    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[Hit]: ...
    def delete(self, ids: list[str]) -> None: ...
    def scroll(self, limit: int, offset: Any = None, with_vectors: bool = False,
               files_only: bool = False, payload: bool = True) -> tuple[list[Hit], Any]: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...

    # --- shared ---------------------------------------------------------------------------------
    def file_points(self, batch: int = 1000):
        """Every point whose image is a stored file (an upload), with its payload."""
        offset = None
        while True:
            hits, offset = self.scroll(batch, offset, files_only=True)
            yield from hits
            if offset is None:
                return

    @property
    def meta(self) -> dict:
        return self._read_meta() if self._exists() else {}

    def ensure(self, meta: dict, recreate: bool = False) -> dict:
        """Create the collection for `meta`'s model, or check that the existing one was built by it."""
        if recreate and self._exists():
            self.drop()
        if not self._exists():
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

    def duplicate_pairs(self, threshold: float, sample: int = 1000, limit: int = 5,
                        seed: int = 0) -> list[tuple[str, str, float]]:
        """Pairs (a, b, cosine), b among the `limit` nearest of a, cosine ≥ `threshold`, for `sample` points drawn
        at random (seeded: the same sample on both engines, and from one call to the next)."""
        ids = self.sample_ids(sample, seed)
        points = [p for p in self.retrieve(ids, with_vectors=["float"]) if p.float_vector is not None]
        return self._nearest_pairs(points, threshold, limit) if points else []

    def sample_ids(self, sample: int, seed: int = 0) -> list[str]:
        """`sample` point ids drawn at random, seeded, from all of them in id order."""
        ids, offset = [], None
        while True:
            hits, offset = self.scroll(10_000, offset, payload=False)  # ids only
            ids += [h.id for h in hits]
            if offset is None:
                break
        ids.sort()
        return ids if sample >= len(ids) else random.Random(seed).sample(ids, sample)

    def _nearest_pairs(self, points: list[Hit], threshold: float, limit: int) -> list[tuple[str, str, float]]: ...

    def search(
        self,
        metric: str,
        float_vector: np.ndarray,
        code: np.ndarray,
        k: int = 10,
        offset: int = 0,
        labels: list[str] | None = None,
        threshold: float | None = None,
        oversampling: int = 4,
        exact: bool = False,
        split: str | None = None,
        exclude: list[str] | None = None,
    ) -> list[Hit]:
        """The k nearest points by `metric`, best first, after skipping `offset` (for paging).

        `threshold`: the least cosine similarity for cosine and hamming+rerank, the most Hamming distance
        for hamming. `labels`: only points with one of these labels (a payload filter inside Qdrant);
        `split`: only points from that dataset split (the evaluation's train-only database); `exclude`: never
        these ids (a stored image searched by its own vectors leaves itself out).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        want = k + offset
        fvec = [float(v) for v in float_vector]
        cvec = [float(v) for v in code]
        common = dict(labels=labels, split=split, exact=exact, exclude=list(exclude or []))
        if metric == "cosine":
            plan = dict(using="float", vector=fvec, limit=k, offset=offset, threshold=threshold)
        elif metric == "hamming+rerank":
            plan = dict(using="float", vector=fvec, limit=k, offset=offset, threshold=threshold,
                        prefetch=self._rerank_prefetch(cvec, max(want * oversampling, want), common))
        else:
            plan = dict(using="code", vector=cvec, limit=want, offset=0, threshold=threshold, with_float=True)
        hits = self._query(dict(plan, **common))
        if metric == "hamming":
            hits = self._hamming_ties(hits, fvec, cvec, want, common)[offset:want]
        return hits

    def _rerank_prefetch(self, cvec, candidates: int, common: dict) -> dict:
        """The candidates cosine re-ranks: every point within the Hamming distance r of the `candidates`-th
        nearest code (up to TIE_LIMIT). Taking just the first `candidates` would cut a tie at r arbitrarily, and
        ties are large (a class's images often share one code): the result would depend on the engine's order."""
        nearest = self._query(dict(using="code", vector=cvec, limit=candidates, offset=0, threshold=None,
                                   payload=False, **common))
        if len(nearest) < candidates:  # the whole (filtered) collection is within reach
            return dict(using="code", vector=cvec, limit=candidates)
        return _within(cvec, max(h.score for h in nearest))

    def _hamming_ties(self, hits: list[Hit], fvec, cvec, want: int, common: dict) -> list[Hit]:
        """The deterministic tie rule: by distance, then cosine, then id. Qdrant returns an arbitrary subset of
        the points tied at the cut-off distance d; those are re-fetched as Qdrant's cosine ranking of every point
        within d (a prefetch of up to TIE_LIMIT), so the order is exact whenever fewer points tie."""
        q = np.asarray(fvec, dtype=np.float32)
        cos = {h.id: float(np.dot(h.float_vector, q)) for h in hits}
        if len(hits) == want:
            cut = max(h.score for h in hits)
            below = [h for h in hits if h.score < cut]
            tied = self._query(dict(
                using="float", vector=fvec, limit=want - len(below) + 16, offset=0, threshold=None,  # + equal cosines
                prefetch=_within(cvec, cut),
                **dict(common, exclude=common["exclude"] + [h.id for h in below]),
            ))
            for h in tied:  # scored by cosine; their distance is the cut-off
                cos[h.id], h.score = h.score, cut
            hits = below + tied
        hits.sort(key=lambda h: (round(h.score), -cos[h.id], h.id))
        for h in hits:
            h.float_vector = None
        return hits[:want]


# ------------------------------------------------------------------------------------------------
class EdgeStore(Store):
    """The Qdrant engine in-process: a folder `<path>/<collection>/` holding the shard and `meta.json`.

    One process at a time may open it (an exclusive file lock): two indexing runs, or an indexing run and
    the app, are refused rather than interleaved.
    """

    # Binary quantization: float vectors as 128 bits kept in RAM, scanned, and the best `oversampling × k`
    # rescored with the originals. bench/search.py, 1M synthetic points: cosine p50 10.3 ms, recall@10 1.0
    # (36 ms exact); oversampling 40 gave recall 0.85, 80 gave 0.99, at about the same speed.
    QUANTIZED_OVERSAMPLING = 128

    def __init__(self, path: str | Path, collection: str, quantized: bool = False):
        import qdrant_edge  # noqa: F401  (fail here, with the import error, if the wheel is missing)

        self.collection = collection
        self.root = Path(path) / collection
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "w")  # noqa: SIM115 (held for the store's lifetime)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreError(
                f"collection {collection!r} at {self.root} is open in another process (an indexing run or the "
                "app); wait for it to finish or stop it, then try again"
            ) from None
        self._shard = None
        self.quantized = quantized  # for a new collection; an existing one says what it is in meta.json
        if self._exists():
            self._open()
            self.quantized = self._read_meta().get("float_index") == "binary-quantized"

    @property
    def _shard_dir(self) -> Path:
        return self.root / "shard"

    def _exists(self) -> bool:
        return (self.root / "meta.json").is_file()

    def _open(self):
        from qdrant_edge import EdgeShard

        self._shard = EdgeShard.load(str(self._shard_dir))

    def reload(self, swap) -> None:
        """Close the shard, run `swap()` on the folder (the lock still held: no other process meanwhile), and
        open what is there then."""
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
        swap()
        if self._exists():
            self._open()

    def _create(self, meta: dict) -> None:
        import shutil

        from qdrant_edge import (
            BinaryQuantizationConfig,
            Distance,
            EdgeConfig,
            EdgeShard,
            EdgeVectorParams,
            HnswIndexConfig,
            PayloadSchemaType,
            UpdateOperation,
            VectorStorageDatatype,
        )

        shutil.rmtree(self._shard_dir, ignore_errors=True)  # a shard left by a run killed before meta.json
        # quantized: no HNSW graph (m=0; building one for 1M points took over 10 min on 2 cores), binary
        # quantization of `float` instead, which optimize() builds in seconds.
        extra = {}
        if self.quantized:
            meta = dict(meta, float_index="binary-quantized")
            no_graph = HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)
            extra = dict(quantization_config=BinaryQuantizationConfig(always_ram=True), hnsw_config=no_graph)
        config = EdgeConfig(
            vectors={
                "float": EdgeVectorParams(size=meta["float_dim"], distance=Distance.Cosine, **extra),
                "code": EdgeVectorParams(
                    size=meta["n_bits"], distance=Distance.Manhattan, datatype=VectorStorageDatatype.Uint8,
                    hnsw_config=extra.get("hnsw_config"),
                ),
            }
        )
        self._shard = EdgeShard.create(str(self._shard_dir), config)
        self._shard.update(UpdateOperation.create_field_index("label", PayloadSchemaType.Keyword))
        self._shard.flush()
        # meta.json last, atomically: its presence is what says the collection exists.
        tmp = self.root / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.root / "meta.json")

    def _read_meta(self) -> dict:
        return json.loads((self.root / "meta.json").read_text())

    def update_meta(self, changes: dict) -> None:
        tmp = self.root / "meta.json.tmp"
        tmp.write_text(json.dumps({**self._read_meta(), **changes}, indent=2))
        os.replace(tmp, self.root / "meta.json")

    def drop(self) -> None:
        import shutil

        if self._shard is not None:
            self._shard.close()
            self._shard = None
        (self.root / "meta.json").unlink(missing_ok=True)
        shutil.rmtree(self._shard_dir, ignore_errors=True)

    def upsert(self, ids, floats, codes, payloads) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [
            Point(id=i, vector={"float": f.tolist(), "code": c.tolist()}, payload=p)
            for i, f, c, p in zip(ids, floats, codes, payloads, strict=True)
        ]
        self._shard.update(UpdateOperation.upsert_points(points))

    def flush(self) -> None:
        if self._shard is not None:
            self._shard.flush()

    @staticmethod
    def _filter(labels, split=None, exclude=None):
        from qdrant_edge import FieldCondition, Filter, HasIdCondition, MatchAny, MatchValue

        must = [FieldCondition(key="label", match=MatchAny(any=list(labels)))] if labels else []
        must += [FieldCondition(key="source.split", match=MatchValue(split))] if split else []
        must_not = [HasIdCondition(set(exclude))] if exclude else []
        return Filter(must=must, must_not=must_not) if must or must_not else None

    def _query(self, plan: dict) -> list[Hit]:
        from qdrant_edge import Prefetch, QuantizationSearchParams, Query, QueryRequest, SearchParams

        flt = self._filter(plan["labels"], plan["split"], plan.get("exclude"))
        params = SearchParams(exact=True) if plan["exact"] else None
        if self.quantized:  # exact: the original vectors only; else the quantized scan, rescored
            quant = (QuantizationSearchParams(ignore=True) if plan["exact"] else
                     QuantizationSearchParams(rescore=True, oversampling=self.QUANTIZED_OVERSAMPLING))
            params = SearchParams(exact=bool(plan["exact"]), quantization=quant)
        prefetches = None
        if "prefetch" in plan:
            pf = plan["prefetch"]
            prefetches = [Prefetch(limit=pf["limit"], query=Query.Nearest(pf["vector"], using=pf["using"]),
                                   filter=flt, params=params, score_threshold=pf.get("threshold"))]
        request = QueryRequest(
            limit=plan["limit"], offset=plan["offset"], query=Query.Nearest(plan["vector"], using=plan["using"]),
            prefetches=prefetches, filter=flt, score_threshold=plan["threshold"], params=params,
            with_payload=plan.get("payload", True), with_vector=["float"] if plan.get("with_float") else False,
        )
        return [_hit(p) for p in self._shard.query(request)]

    def count(self, labels=None) -> int:
        from qdrant_edge import CountRequest

        return self._shard.count(CountRequest(exact=True, filter=self._filter(labels))) if self._shard else 0

    def label_counts(self) -> dict[str, int]:
        from qdrant_edge import FacetRequest

        if self._shard is None:
            return {}
        return {h.value: h.count for h in self._shard.facet(FacetRequest(key="label", limit=10_000, exact=True))}

    def retrieve(self, ids, with_vectors=False) -> list[Hit]:
        if self._shard is None:
            return []
        return [_hit(r) for r in self._shard.retrieve(list(ids), with_payload=True, with_vector=with_vectors)]

    def delete(self, ids) -> None:
        from qdrant_edge import UpdateOperation

        self._shard.update(UpdateOperation.delete_points(list(ids)))
        self._shard.flush()

    def scroll(self, limit, offset=None, with_vectors=False, files_only=False, payload=True):
        from qdrant_edge import Filter, IsEmptyCondition, ScrollRequest

        flt = Filter(must_not=[IsEmptyCondition("source.file")]) if files_only else None
        records, nxt = self._shard.scroll(
            ScrollRequest(offset=offset, limit=limit, filter=flt, with_payload=payload, with_vector=with_vectors)
        )
        return [_hit(r) for r in records], nxt

    def optimize(self) -> None:
        self._shard.optimize()

    def _nearest_pairs(self, points, threshold, limit):
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        requests = [
            QueryRequest(limit=limit + 1, query=Query.Nearest(p.float_vector.tolist(), using="float"),
                         score_threshold=threshold, with_payload=False)
            for p in points
        ]
        pairs = []
        for p, hits in zip(points, self._shard.query_batch(QueryBatchRequest(requests)), strict=True):
            pairs += [(p.id, str(h.id), float(h.score)) for h in hits if str(h.id) != p.id]
        return pairs

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def _within(cvec, radius: float) -> dict:
    """A prefetch of every point whose code is at most `radius` bits from `cvec` (up to TIE_LIMIT of them)."""
    return dict(using="code", vector=cvec, limit=TIE_LIMIT, threshold=radius + 0.5)


def _hit(p) -> Hit:
    vec = p.vector
    vec = vec if isinstance(vec, dict) else {}
    fv, cv = (np.asarray(vec[name], dtype=np.float32) if name in vec else None for name in ("float", "code"))
    score = getattr(p, "score", 0.0)
    return Hit(id=str(p.id), score=float(score) if score is not None else 0.0, payload=dict(p.payload or {}),
               float_vector=fv, code_vector=cv)


# ------------------------------------------------------------------------------------------------
class ClientStore(Store):
    """qdrant-client: a Qdrant server (`url`, `api_key`) or the client's local mode (`location=":memory:"`
    or `path=`). Server collections get binary quantization on `float` (in RAM, originals on disk,
    rescored with oversampling) and a keyword index on `label`; shards and replicas are configurable."""

    RETRIES, BACKOFF = 3, 0.25

    def __init__(
        self,
        collection: str,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        path: str | None = None,
        timeout: int = 10,
        shards: int = 1,
        replicas: int = 1,
    ):
        from qdrant_client import QdrantClient

        self.collection = collection
        self.shards, self.replicas = shards, replicas
        self.remote = url is not None
        self.url = (url or "").rstrip("/")
        self.auth_headers = {"api-key": api_key} if api_key else {}  # for the REST calls the client has no method for
        if url:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout)
        elif path:
            self.client = QdrantClient(path=path)
        else:
            self.client = QdrantClient(location=location or ":memory:")

    def _call(self, fn, *args, retry: bool = True, **kwargs):
        """Transient server errors (connection refused, timeouts, 502/503/504) are retried `RETRIES` times with
        exponential back-off (0.25 s, 0.5 s, 1 s: a restarting node or a leader election), then become
        StoreUnavailable, with what to do. Every call here is idempotent (deterministic ids) except creating a
        collection, which passes retry=False."""
        for attempt in range(self.RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except StoreError:
                raise
            except Exception as e:  # qdrant-client raises httpx / grpc / ResponseHandlingException variants
                if self.remote and getattr(e, "status_code", None) in (401, 403):
                    raise StoreError(
                        f"the Qdrant server refused the API key (HTTP {e.status_code}); set QDRANT_API_KEY to the "
                        "server's key (compose: the .env file)"
                    ) from e
                if not (self.remote and _is_transient(e)):
                    raise
                if retry and attempt < self.RETRIES:
                    log.warning("Qdrant: %s (%s); retry %d of %d", type(e).__name__, e, attempt + 1, self.RETRIES)
                    time.sleep(self.BACKOFF * 2**attempt)
                    continue
                raise StoreUnavailable(
                    f"the Qdrant server does not answer ({type(e).__name__}: {e}); check that it runs and that "
                    "QDRANT_URL / QDRANT_API_KEY are right; the app retries on the next request"
                ) from e

    def _exists(self) -> bool:
        return self._call(self.client.collection_exists, self.collection)

    def _create(self, meta: dict) -> None:
        from qdrant_client import models

        quant = None
        if self.remote:
            quant = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
        self._call(
            self.client.create_collection,
            self.collection,
            vectors_config={
                "float": models.VectorParams(
                    size=meta["float_dim"], distance=models.Distance.COSINE, on_disk=self.remote or None,
                    quantization_config=quant,
                ),
                "code": models.VectorParams(
                    size=meta["n_bits"], distance=models.Distance.MANHATTAN, datatype=models.Datatype.UINT8
                ),
            },
            shard_number=self.shards if self.remote else None,
            replication_factor=self.replicas if self.remote else None,
            metadata=meta,
            retry=False,
        )
        self._call(self.client.create_payload_index, self.collection, "label", models.PayloadSchemaType.KEYWORD)

    def _read_meta(self) -> dict:
        return dict(self._call(self.client.get_collection, self.collection).config.metadata or {})

    def update_meta(self, changes: dict) -> None:
        self._call(self.client.update_collection, self.collection, metadata={**self._read_meta(), **changes})

    def drop(self) -> None:
        self._call(self.client.delete_collection, self.collection)

    def upsert(self, ids, floats, codes, payloads) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, vector={"float": f.tolist(), "code": c.tolist()}, payload=p)
            for i, f, c, p in zip(ids, floats, codes, payloads, strict=True)
        ]
        self._call(self.client.upsert, self.collection, points=points, wait=True)

    def flush(self) -> None:
        pass

    @staticmethod
    def _filter(labels, split=None, exclude=None):
        from qdrant_client import models

        must = [models.FieldCondition(key="label", match=models.MatchAny(any=list(labels)))] if labels else []
        must += [models.FieldCondition(key="source.split", match=models.MatchValue(value=split))] if split else []
        must_not = [models.HasIdCondition(has_id=list(exclude))] if exclude else []
        return models.Filter(must=must or None, must_not=must_not or None) if must or must_not else None

    def _query(self, plan: dict) -> list[Hit]:
        from qdrant_client import models

        flt = self._filter(plan["labels"], plan["split"], plan.get("exclude"))
        params = models.SearchParams(
            exact=plan["exact"] or None,
            quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0) if self.remote else None,
        )
        prefetch = None
        if "prefetch" in plan:
            pf = plan["prefetch"]
            prefetch = [models.Prefetch(query=pf["vector"], using=pf["using"], limit=pf["limit"], filter=flt,
                                        params=params, score_threshold=pf.get("threshold"))]
        res = self._call(
            self.client.query_points, self.collection, query=plan["vector"], using=plan["using"],
            prefetch=prefetch, query_filter=flt, limit=plan["limit"], offset=plan["offset"],
            score_threshold=plan["threshold"], search_params=params, with_payload=plan.get("payload", True),
            with_vectors=["float"] if plan.get("with_float") else False,
        )
        return [_hit(p) for p in res.points]

    def count(self, labels=None) -> int:
        if not self._exists():
            return 0
        return self._call(self.client.count, self.collection, count_filter=self._filter(labels), exact=True).count

    def label_counts(self) -> dict[str, int]:
        if not self._exists():
            return {}
        res = self._call(self.client.facet, self.collection, key="label", limit=10_000, exact=True)
        return {h.value: h.count for h in res.hits}

    def retrieve(self, ids, with_vectors=False) -> list[Hit]:
        recs = self._call(self.client.retrieve, self.collection, ids=list(ids), with_payload=True,
                          with_vectors=with_vectors)
        return [_hit(r) for r in recs]

    def delete(self, ids) -> None:
        from qdrant_client import models

        self._call(self.client.delete, self.collection, points_selector=models.PointIdsList(points=list(ids)))

    def scroll(self, limit, offset=None, with_vectors=False, files_only=False, payload=True):
        from qdrant_client import models

        flt = (models.Filter(must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="source.file"))])
               if files_only else None)
        records, nxt = self._call(self.client.scroll, self.collection, limit=limit, offset=offset, scroll_filter=flt,
                                  with_payload=payload, with_vectors=with_vectors)
        return [_hit(r) for r in records], nxt

    def optimize(self) -> None:
        pass

    def _nearest_pairs(self, points, threshold, limit):
        from qdrant_client import models

        requests = [models.QueryRequest(query=p.float_vector.tolist(), using="float", limit=limit + 1,
                                        score_threshold=threshold, with_payload=False) for p in points]
        pairs = []
        for p, res in zip(points, self._call(self.client.query_batch_points, self.collection, requests=requests),
                          strict=True):
            pairs += [(p.id, str(h.id), float(h.score)) for h in res.points if str(h.id) != p.id]
        return pairs

    def close(self) -> None:
        self.client.close()


def _is_transient(e: Exception) -> bool:
    names = {type(x).__name__ for x in (e, e.__cause__, e.__context__) if x is not None}
    text = str(e).lower()
    status = getattr(e, "status_code", None)
    return status in (502, 503, 504) or bool(
        names & {"ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ResponseHandlingException",
                 "ConnectionRefusedError", "TimeoutException", "WriteTimeout", "PoolTimeout"}
    ) or "connection refused" in text or "timed out" in text


def resolve_location(location: str | None = None, data_dir: str | Path = "data") -> str:
    """Where a collection lives, the one rule for every command: `location` if given, else $QDRANT_URL (a
    server), else $QDRANT_PATH (a folder), else <data_dir>/qdrant (the embedded engine)."""
    return location or os.environ.get("QDRANT_URL") or os.environ.get("QDRANT_PATH") or str(Path(data_dir) / "qdrant")


def open_store(
    collection: str,
    location: str | None = None,
    api_key: str | None = None,
    shards: int = 1,
    replicas: int = 1,
    quantized: bool = False,
) -> Store:
    """`location`: an http(s) URL (a Qdrant server), `:memory:` (qdrant-client local mode), or a folder
    (the embedded engine; default `$QDRANT_PATH` or `data/qdrant`). The URL and key default to
    `$QDRANT_URL` and `$QDRANT_API_KEY`. `quantized`: a new embedded collection for millions of points on a
    small machine (binary quantization, no HNSW graph); a server collection is always quantized."""
    location = resolve_location(location)
    if location.startswith(("http://", "https://")):
        return ClientStore(collection, url=location, api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                           shards=shards, replicas=replicas)
    if location == ":memory:":
        return ClientStore(collection, location=location)
    if location.startswith("local:"):
        return ClientStore(collection, path=location.removeprefix("local:"))
    return EdgeStore(location, collection, quantized=quantized)
