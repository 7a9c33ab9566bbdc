"""How vectors live in Qdrant, whichever engine holds them: the schema, the errors, and the search plans.

Named vectors: `float` (L2-normalised features, Cosine) and `code` (the binary code as ±1, Dot distance, binary
quantization: one bit per bit in RAM; Hamming = (n_bits − dot) / 2). Payload: `label` and `code` (the code as hex;
both keyword-indexed: filters and Hamming ties use them), `label_id`, `source` (dataset/split/filename or row, or
a stored file), `sha256`. The collection's metadata records the model that built it and the layout.

The engines (`indexer.edge.EdgeStore`, `indexer.server.ClientStore`) answer `Nearest` requests; `indexer.plans`
turns each metric's rule (`indexer.ranking`) into those requests.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import time
import uuid
from abc import abstractmethod
from typing import Any

import numpy as np

from indexer import ranking
from indexer.plans import Hit, Nearest, SearchPlans

LAYOUT = 2  # 2: codes as ±1 with Dot distance and a `code` payload key; 1 (unrecorded): 0/1 bytes, Manhattan
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
    if existing.get("model_sha256") == wanted.get("model_sha256") and existing.get("n_bits") != wanted.get("n_bits"):
        raise IncompatibleCollection(
            f"collection {collection!r} holds {existing.get('n_bits')}-bit codes that {wanted.get('model')}'s weights "
            f"made before its codes became {wanted.get('n_bits')} bits; derive them again from the stored vectors "
            f"with `python -m indexer upgrade --collection {collection} --model MODEL_DIR` (no image is read)"
        )
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


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """One file member of `data` in a snapshot."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


COPY_BATCH = 2000


def copy_points(source: Store, target: Store, batch: int = COPY_BATCH, recode=None) -> int:
    """Every point of `source` into `target`, vectors and payload as stored (the code key written anew); `recode`:
    (float vector, code) → the code to write instead."""
    ids, floats, codes, payloads, copied = [], [], [], [], 0

    def put():
        target.upsert(ids, np.stack(floats), np.stack(codes), payloads)
        return len(ids)

    for h in source.all_points(batch, with_vectors=True):
        ids.append(h.id)
        floats.append(h.float_vector)
        codes.append(h.code_vector if recode is None else recode(h.float_vector, h.code_vector))
        payloads.append({k: v for k, v in h.payload.items() if k != "code"})
        if len(ids) == batch:
            copied += put()
            ids, floats, codes, payloads = [], [], [], []
    if ids:
        copied += put()
    target.flush()
    return copied


class Store(SearchPlans):
    """The engine interface: what an engine implements (the abstract methods), and what every store shares on top
    of it: the compatibility check, paging over ids, and the search plans (indexer.plans). A new engine implements
    each abstract method and passes tests/test_engines.py's contract."""

    collection: str
    engine: str  # what a snapshot records: "embedded" or "server"; a snapshot restores only to its own kind
    SNAPSHOT_MEMBER: str  # the engine's part of a snapshot: a folder ("collection/") or a file

    # --- the collection's existence and metadata --------------------------------------------------
    @abstractmethod
    def _exists(self) -> bool: ...
    @abstractmethod
    def _create(self, meta: dict) -> None: ...
    @abstractmethod
    def _read_meta(self) -> dict: ...
    @abstractmethod
    def update_meta(self, changes: dict) -> None: ...
    @abstractmethod
    def drop(self) -> None: ...

    # --- write, read, delete, count ---------------------------------------------------------------
    @abstractmethod
    def upsert(self, ids: list[str], floats: np.ndarray, codes: np.ndarray, payloads: list[dict]) -> None: ...
    @abstractmethod
    def flush(self) -> None: ...
    @abstractmethod
    def optimize(self) -> None: ...
    @abstractmethod
    def count(self, labels: list[str] | None = None) -> int: ...
    @abstractmethod
    def label_counts(self) -> dict[str, int]: ...
    @abstractmethod
    def delete(self, ids: list[str]) -> None: ...
    @abstractmethod
    def scroll(self, limit: int, offset: Any = None, with_vectors: bool = False,
               files_only: bool = False, payload: bool = True) -> tuple[list[Hit], Any]: ...
    @abstractmethod
    def close(self) -> None: ...

    # --- snapshot, restore, swap ------------------------------------------------------------------
    @abstractmethod
    def write_snapshot(self, tar: tarfile.TarFile, skip=None) -> None:
        """Add the collection, flushed, to a snapshot being written (under SNAPSHOT_MEMBER); `skip`: a tarfile
        filter that leaves out transient files (the lock, temporary files) of an engine that writes files."""

    @abstractmethod
    def read_snapshot(self, tar: tarfile.TarFile) -> None:
        """Replace the collection by the one in a snapshot (its members already checked: indexer.backup)."""

    @abstractmethod
    def swap_in(self, staging: Store) -> None:
        """Replace this collection's points and metadata by those of `staging`, a complete copy beside it, which is
        gone afterwards; a stop midway leaves one of the two whole (python -m indexer upgrade)."""

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
