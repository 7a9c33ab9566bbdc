"""The Qdrant engine in-process (`qdrant-edge-py`): a collection is a folder on disk. The default engine."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

from indexer.edge_requests import filter_of, request_of
from indexer.plans import INDEXED_FIELDS, Filters, Hit, Nearest, full_scan_kb
from indexer.store import Store, StoreError, point_vectors, to_hit, with_code_keys

CLOSE_WAIT_S = 30.0  # closing waits this long for calls in other threads (the map's scroll) to end


class EdgeStore(Store):
    """The Qdrant engine in-process: a folder `<path>/<collection>/` holding the shard and `meta.json`.

    One process at a time may open it (an exclusive file lock): two indexing runs, or an indexing run and
    the app, are refused rather than interleaved.
    """

    engine = "embedded"
    SNAPSHOT_MEMBER = "collection"  # the folder as it is on disk, less the lock and temporary files

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
        self._recover()
        self.quantized = quantized  # for a new collection; an existing one says what it is in meta.json
        if self._exists():
            self._open()
            self.quantized = self._read_meta().get("float_index") == "binary-quantized"

    @property
    def _shard_dir(self) -> Path:
        return self.root / "shard"

    @property
    def shard(self):
        """The open shard; refused with a StoreError while closed (after close, or while a collection is swapped in)."""
        if self._shard is None:
            raise StoreError(f"collection {self.collection!r} is closed or being replaced; try again")
        return self._shard

    def _close_shard(self, flush: bool = True) -> None:
        """Close the shard, refusing new calls, once calls in other threads end (the engine refuses to close a
        shard in use: "Already borrowed")."""
        shard, self._shard = self._shard, None
        deadline = time.monotonic() + CLOSE_WAIT_S
        while shard is not None:
            try:
                if flush:
                    shard.flush()
                return shard.close()
            except RuntimeError as e:
                if "borrowed" not in str(e) or time.monotonic() > deadline:
                    self._shard = shard  # still open: the store can be closed again
                    raise
                time.sleep(0.01)

    def _exists(self) -> bool:
        return (self.root / "meta.json").is_file()

    def _open(self):
        from qdrant_edge import EdgeShard

        self._shard = EdgeShard.load(str(self._shard_dir))

    def reload(self, swap) -> None:
        """Close the shard, run `swap()` on the folder (the lock held: no other process meanwhile), open the result."""
        self._close_shard()
        swap()
        if self._exists():
            self._open()

    def _create(self, meta: dict) -> None:
        from qdrant_edge import (
            BinaryQuantizationConfig,
            Distance,
            EdgeConfig,
            EdgeShard,
            EdgeVectorParams,
            HnswIndexConfig,
            Memory,
            PayloadSchemaType,
            UpdateOperation,
        )

        shutil.rmtree(self._shard_dir, ignore_errors=True)  # a shard left by a run killed before meta.json
        # quantized: no HNSW graph (m=0: a graph over millions of points is slow to build on a small machine),
        # binary quantization of `float` instead, which optimize() builds quickly (bench/search.py times both).
        scan = full_scan_kb(meta["float_dim"])
        extra = dict(hnsw_config=HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=scan))
        if self.quantized:
            meta = dict(meta, float_index="binary-quantized")
            no_graph = HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=scan)
            extra = dict(quantization_config=BinaryQuantizationConfig(always_ram=True), hnsw_config=no_graph)
        config = EdgeConfig(
            vectors={
                "float": EdgeVectorParams(size=meta["float_dim"], distance=Distance.Cosine, **extra),
                # ±1 codes: binary quantization holds them at one bit per bit, scanned exactly (no graph)
                "code": EdgeVectorParams(
                    size=meta["n_bits"], distance=Distance.Dot, memory=Memory.Cold,
                    quantization_config=BinaryQuantizationConfig(memory=Memory.Cached),
                    hnsw_config=HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10),
                ),
            }
        )
        self._shard = EdgeShard.create(str(self._shard_dir), config)
        for key in INDEXED_FIELDS:
            self.shard.update(UpdateOperation.create_field_index(key, PayloadSchemaType.Keyword))
        self.shard.flush()
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
        self._close_shard(flush=False)
        (self.root / "meta.json").unlink(missing_ok=True)
        shutil.rmtree(self._shard_dir, ignore_errors=True)

    def upsert(self, ids, floats, codes, payloads) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [Point(id=i, vector=v, payload=p) for i, v, p in
                  zip(ids, point_vectors(floats, codes), with_code_keys(codes, payloads), strict=True)]
        self.shard.update(UpdateOperation.upsert_points(points))

    def flush(self) -> None:
        if self._shard is not None:
            self.shard.flush()

    def _query(self, request: Nearest) -> list[Hit]:
        return [to_hit(p) for p in self.shard.query(request_of(request, self.quantized))]

    def _query_batch(self, requests: list[Nearest]) -> list[list[Hit]]:
        from qdrant_edge import QueryBatchRequest

        if not requests:
            return []
        answers = self.shard.query_batch(QueryBatchRequest([request_of(r, self.quantized) for r in requests]))
        return [[to_hit(p) for p in points] for points in answers]

    def count(self, labels=None) -> int:
        from qdrant_edge import CountRequest

        if self._shard is None:
            return 0
        return self.shard.count(CountRequest(exact=True, filter=filter_of(Filters(tuple(labels or ())))))

    def label_counts(self) -> dict[str, int]:
        from qdrant_edge import FacetRequest

        if self._shard is None:
            return {}
        return {h.value: h.count for h in self.shard.facet(FacetRequest(key="label", limit=10_000, exact=True))}

    def retrieve(self, ids, with_vectors=False) -> list[Hit]:
        if self._shard is None:
            return []
        return [to_hit(r) for r in self.shard.retrieve(list(ids), with_payload=True, with_vector=with_vectors)]

    def delete(self, ids) -> None:
        from qdrant_edge import UpdateOperation

        self.shard.update(UpdateOperation.delete_points(list(ids)))
        self.shard.flush()

    def scroll(self, limit, offset=None, with_vectors=False, files_only=False, payload=True):
        from qdrant_edge import Filter, IsEmptyCondition, ScrollRequest

        flt = Filter(must_not=[IsEmptyCondition("source.file")]) if files_only else None
        records, nxt = self.shard.scroll(
            ScrollRequest(offset=offset, limit=limit, filter=flt, with_payload=payload, with_vector=with_vectors)
        )
        return [to_hit(r) for r in records], nxt

    def optimize(self) -> None:
        self.shard.optimize()

    def close(self) -> None:
        self._close_shard()
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    # --- snapshot, restore, swap ----------------------------------------------------------------
    def write_snapshot(self, tar: tarfile.TarFile, skip=None) -> None:
        self.flush()
        tar.add(self.root, arcname=self.SNAPSHOT_MEMBER, filter=skip)

    def read_snapshot(self, tar: tarfile.TarFile) -> None:
        """The snapshot's folder, extracted beside the collection's and swapped in (the lock held throughout)."""
        staging = self.root.with_name(self.root.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        prefix = self.SNAPSHOT_MEMBER + "/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for m in members:
            m.name = m.name.removeprefix(prefix)
        tar.extractall(staging, members=members, filter="data")  # no absolute paths, no links out, no devices

        def swap():  # meta.json is what says the collection exists: out first, in last (a crash leaves none, not half)
            (self.root / "meta.json").unlink(missing_ok=True)
            for entry in self.root.iterdir():
                if entry.name != ".lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            for entry in sorted(staging.iterdir(), key=lambda e: e.name == "meta.json"):
                entry.replace(self.root / entry.name)
            staging.rmdir()

        self.reload(swap)

    def swap_in(self, staging: Store) -> None:
        """The staged shard and metadata into this collection's folder; the metadata last, so that a stop before it
        leaves the old layout's metadata (and the next open puts a set-aside shard back)."""
        if not isinstance(staging, EdgeStore):
            raise TypeError("an embedded collection swaps in an embedded staging collection")
        staging.close()

        def swap():
            os.replace(self.root / "shard", self.root / "shard.old")
            os.replace(staging.root / "shard", self.root / "shard")
            os.replace(staging.root / "meta.json", self.root / "meta.json")
            shutil.rmtree(self.root / "shard.old")
            shutil.rmtree(staging.root, ignore_errors=True)

        self.reload(swap)

    def _recover(self) -> None:
        """A swap stopped between setting the old shard aside and putting the new one in: the old one goes back
        (run at every open, with the lock held)."""
        if (self.root / "shard.old").is_dir() and not (self.root / "shard").is_dir():
            os.replace(self.root / "shard.old", self.root / "shard")
