"""qdrant-client: a Qdrant server (`url`, `api_key`), with retries, or the client's own local mode (tests)."""

from __future__ import annotations

import logging
import tarfile
import time

from indexer.plans import INDEXED_FIELDS, Filters, Hit, Nearest, full_scan_kb
from indexer.server_requests import filter_of, request_of
from indexer.store import (
    Store,
    StoreError,
    StoreUnavailable,
    add_bytes,
    copy_points,
    point_vectors,
    to_hit,
    with_code_keys,
)

log = logging.getLogger(__name__)


class ClientStore(Store):
    """qdrant-client: a Qdrant server (`url`, `api_key`) or the client's local mode (`location=":memory:"`
    or `path=`). Server collections get binary quantization on `float` (in RAM, originals on disk,
    rescored with oversampling) and a keyword index on `label`; shards and replicas are configurable."""

    RETRIES, BACKOFF = 3, 0.25
    engine = "server"
    SNAPSHOT_MEMBER = "collection.snapshot"  # Qdrant's own snapshot of the collection

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
                    hnsw_config=models.HnswConfigDiff(full_scan_threshold=full_scan_kb(meta["float_dim"])),
                ),
                # ±1 codes: binary quantization holds them at one bit per bit, scanned exactly (no graph)
                "code": models.VectorParams(
                    size=meta["n_bits"], distance=models.Distance.DOT, on_disk=self.remote or None,
                    quantization_config=models.BinaryQuantization(binary=models.BinaryQuantizationConfig(
                        always_ram=True)) if self.remote else None,
                    hnsw_config=models.HnswConfigDiff(m=0) if self.remote else None,
                ),
            },
            shard_number=self.shards if self.remote else None,
            replication_factor=self.replicas if self.remote else None,
            metadata=meta,
            retry=False,
        )
        for key in INDEXED_FIELDS:
            self._call(self.client.create_payload_index, self.collection, key, models.PayloadSchemaType.KEYWORD)

    def _read_meta(self) -> dict:
        return dict(self._call(self.client.get_collection, self.collection).config.metadata or {})

    def update_meta(self, changes: dict) -> None:
        self._call(self.client.update_collection, self.collection, metadata={**self._read_meta(), **changes})

    def drop(self) -> None:
        self._call(self.client.delete_collection, self.collection)

    def upsert(self, ids, floats, codes, payloads) -> None:
        from qdrant_client import models

        points = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in
                  zip(ids, point_vectors(floats, codes), with_code_keys(codes, payloads), strict=True)]
        self._call(self.client.upsert, self.collection, points=points, wait=True)

    def flush(self) -> None:
        pass

    def _query(self, request: Nearest) -> list[Hit]:
        return self._query_batch([request])[0]

    def _query_batch(self, requests: list[Nearest]) -> list[list[Hit]]:
        if not requests:
            return []
        answers = self._call(self.client.query_batch_points, self.collection,
                             requests=[request_of(r, self.remote) for r in requests])
        return [[to_hit(p) for p in a.points] for a in answers]

    def count(self, labels=None) -> int:
        if not self._exists():
            return 0
        return self._call(self.client.count, self.collection, count_filter=filter_of(Filters(tuple(labels or ()))),
                          exact=True).count

    def label_counts(self) -> dict[str, int]:
        if not self._exists():
            return {}
        res = self._call(self.client.facet, self.collection, key="label", limit=10_000, exact=True)
        return {h.value: h.count for h in res.hits}

    def retrieve(self, ids, with_vectors=False) -> list[Hit]:
        recs = self._call(self.client.retrieve, self.collection, ids=list(ids), with_payload=True,
                          with_vectors=with_vectors)
        return [to_hit(r) for r in recs]

    def delete(self, ids) -> None:
        from qdrant_client import models

        self._call(self.client.delete, self.collection, points_selector=models.PointIdsList(points=list(ids)))

    def scroll(self, limit, offset=None, with_vectors=False, files_only=False, payload=True):
        from qdrant_client import models

        flt = (models.Filter(must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="source.file"))])
               if files_only else None)
        records, nxt = self._call(self.client.scroll, self.collection, limit=limit, offset=offset, scroll_filter=flt,
                                  with_payload=payload, with_vectors=with_vectors)
        return [to_hit(r) for r in records], nxt

    def optimize(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()

    # --- snapshot, restore, swap ----------------------------------------------------------------
    def write_snapshot(self, tar: tarfile.TarFile, skip=None) -> None:
        """Qdrant's own snapshot of the collection (POST /collections/{c}/snapshots), downloaded into the file, then
        deleted from the server."""
        import httpx

        self._require_rest("snapshot")
        name = self._call(self.client.create_snapshot, self.collection, wait=True).name
        try:
            r = httpx.get(f"{self.url}/collections/{self.collection}/snapshots/{name}", headers=self.auth_headers,
                          timeout=600)
            r.raise_for_status()
            add_bytes(tar, self.SNAPSHOT_MEMBER, r.content)
        finally:
            self._call(self.client.delete_snapshot, self.collection, name)

    def read_snapshot(self, tar: tarfile.TarFile) -> None:
        import httpx

        self._require_rest("restore")
        data = tar.extractfile(self.SNAPSHOT_MEMBER).read()
        r = httpx.post(f"{self.url}/collections/{self.collection}/snapshots/upload", params={"priority": "snapshot"},
                       headers=self.auth_headers, files={"snapshot": ("collection.snapshot", data)}, timeout=600)
        r.raise_for_status()

    def _require_rest(self, what: str) -> None:
        if not self.remote:
            raise StoreError(f"{what} needs a Qdrant server's REST API; qdrant-client's local mode has none")

    def swap_in(self, staging: Store) -> None:
        """The old collection is replaced by a copy of the staging one, which is then dropped (a server has no
        folder to swap: a stop midway leaves the staging collection whole, and the upgrade is run again)."""
        meta = staging.meta
        self.drop()
        self.ensure({k: v for k, v in meta.items() if k != "layout"})
        copy_points(staging, self)
        staging.drop()


def _is_transient(e: Exception) -> bool:
    names = {type(x).__name__ for x in (e, e.__cause__, e.__context__) if x is not None}
    text = str(e).lower()
    status = getattr(e, "status_code", None)
    return status in (502, 503, 504) or bool(
        names & {"ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ResponseHandlingException",
                 "ConnectionRefusedError", "TimeoutException", "WriteTimeout", "PoolTimeout"}
    ) or "connection refused" in text or "timed out" in text
