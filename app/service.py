"""The search service behind the UI and the API: what is about serving (the collection opened lazily, uploads and
URLs read within their limits, access and fair use, the page's sentences) around the one query path
(indexer.query) and the collection's writes (indexer.uploads).

Plain Python, so the Gradio layer (app/main.py and its tabs) only maps components to these calls.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from PIL import Image

from app.access import Access, RateLimiter
from app.fetch import Fetcher, parse_networks
from app.notes import query_note, status_line
from app.settings import DUPLICATE_COSINE, Settings
from indexer.duplicates import duplicate_groups
from indexer.embedder import Embedder
from indexer.factory import open_store
from indexer.query import Answer, Query, QueryPath, as_point_id
from indexer.reembed import reembed
from indexer.sources import SourceError, resolve_image
from indexer.store import Store, StoreError
from indexer.uploads import add_images, delete_images, reconcile
from training.images import BadImage, sha256, to_rgb

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedder = Embedder(settings.model_dir)
        self._store: Store | None = None
        self.meta: dict = {}
        self.reconciled: dict = {}  # what opening the collection found half done (indexer.uploads.reconcile)
        self.background: str | None = None  # work under way beside the serving, said on the page (app.collection)
        self.listeners: list = []  # called after the collection changed (a write, a model switch): its map
        self._queries: QueryPath | None = None
        self.prepare_with(*self.embedder.profile_for(None))
        self._store_error: str | None = None
        self.write_lock = threading.Lock()  # writes, a model switch and storing the map take it in turn
        self._open_lock = threading.Lock()
        self.fetcher = Fetcher(max_bytes=int(settings.max_upload_mb * 1024 * 1024), timeout_s=settings.url_timeout_s,
                               max_redirects=settings.url_max_redirects,
                               allow=parse_networks(settings.url_allow_networks))
        owners = ",".join(filter(None, (settings.write_users, os.environ.get("SPACE_AUTHOR_NAME"))))
        self.access = Access(settings.admin_token, settings.public, settings.read_only, settings.oauth, owners,
                             settings.write_orgs)
        self.limiter = RateLimiter(settings.requests_per_min, int(settings.upload_mb_per_min * 2**20))
        settings.image_dir.mkdir(parents=True, exist_ok=True)
        _ = self.store  # open now if we can; if not, the page says why and each request tries again

    # --- how pictures are prepared: the collection's profile, or another (PREPARE=0, a benchmark's "as is") ------
    @property
    def profile(self):
        return self._preparation[0]

    @property
    def profile_source(self) -> str:
        return self._preparation[1]

    def prepare_with(self, profile, source: str) -> None:
        """The profile pictures are prepared with from now on, and where it comes from: writes and queries alike."""
        self._preparation = (profile, source)
        if self._queries is not None:
            self._queries.profile, self._queries.profile_source = profile, source

    # --- the collection, opened lazily so a Qdrant that is down at start does not stop the app ---------
    @property
    def store(self) -> Store | None:
        with self._open_lock:
            if self._store is None:
                try:
                    store = open_store(self.settings.collection, self.settings.location)
                    try:
                        self.meta = store.require(self.embedder.meta)
                    except BaseException:
                        store.close()  # releases the embedded engine's lock, so `indexer build` can run
                        raise
                    # Uploads (queries and additions) are prepared like the collection's images.
                    self.prepare_with(*self.embedder.profile_for(self.meta))
                    with self.write_lock:  # writes a crash left half done are finished before any other
                        self.reconciled = reconcile(self.embedder, store, self.settings.image_dir, self.profile)
                    self._queries = QueryPath(self.embedder, store, self.meta, self.profile, self.profile_source)
                    self._store, self._store_error = store, None
                except StoreError as e:
                    self._store_error = str(e)
                    log.warning("collection not available: %s", e)
        return self._store

    def require_store(self) -> Store:
        store = self.store
        if store is None:
            raise StoreError(self._store_error or "the collection is not available")
        return store

    def status(self) -> str:
        store = self.store
        if store is None:
            return f"⚠️ {self._store_error}"
        try:
            count = store.count()
        except StoreError as e:  # a server that went away after the collection was opened
            return f"⚠️ {e}"
        return status_line(count, self.settings.collection, self.embedder.meta["model"], self.meta, self.background,
                           len(self.reconciled.get("points_without_file") or []))

    def close(self) -> None:
        if self._store is not None:
            self._store, store = None, self._store
            store.close()

    # --- queries ---------------------------------------------------------------------------------
    def read_upload(self, path: str | Path) -> bytes:
        path = Path(path)
        if (size := path.stat().st_size) > int(self.settings.max_upload_mb * 1024 * 1024):
            raise BadImage(f"the file is {size / 1e6:.1f} MB; the limit is {self.settings.max_upload_mb:g} MB: "
                           "upload a smaller image")
        return path.read_bytes()

    def read_url(self, url: str) -> bytes:
        """The bytes of an image URL, fetched safely (app/fetch.py); decoded later like any upload."""
        return self.fetcher.fetch(url)

    @property
    def queries(self) -> QueryPath:
        """The collection's query path (indexer.query), once the collection is open."""
        self.require_store()
        return self._queries

    def _query(self, metric: str, k: int, labels, threshold, offset: int) -> Query:
        if not 1 <= int(k) <= self.settings.max_k:
            raise ValueError(f"k must be between 1 and {self.settings.max_k}, not {k}; page on with /search_next "
                             "(the Next k button) for more")
        return Query(metric, int(k), tuple(labels or ()), threshold, int(offset), self.settings.oversampling)

    @staticmethod
    def _page(answer: Answer) -> tuple[list[dict], dict | str | None, dict]:
        answer.query["note"] = query_note(answer.query)
        return answer.results(), answer.predicted, answer.query

    def search(self, data: bytes, metric: str = "cosine", k: int = 10, labels: list[str] | None = None,
               threshold: float | None = None, offset: int = 0) -> tuple[list[dict], dict[str, float], dict]:
        """Results, the predicted class (top 3), and what happened to the query: how it was prepared, and whether
        it is unlike the collection (with a sentence for the page)."""
        query = self._query(metric, k, labels, threshold, offset)
        return self._page(self.queries.picture(data, query))

    def search_by_id(self, point_id: str, metric: str = "cosine", k: int = 10, labels: list[str] | None = None,
                     threshold: float | None = None, offset: int = 0) -> tuple[list[dict], str | None, dict]:
        """More like a stored image: its own stored vectors are the query (no model run), and it is left out of
        its results. Returns the results, the stored image's label, and the query (`like`: id, label, source)."""
        query = self._query(metric, k, labels, threshold, offset)
        return self._page(self.queries.stored(point_id, query))

    def search_examples(self, positive: list[str | bytes], negative: list[str | bytes], metric: str = "cosine",
                        k: int = 10, labels: list[str] | None = None, threshold: float | None = None, offset: int = 0,
                        strategy: str = "average_vector") -> tuple[list[dict], None, dict]:
        """More like the positives, less like the negatives (ids or pictures' bytes): results, None, the query."""
        query = self._query(metric, k, labels, threshold, offset)
        if len(positive) + len(negative) > self.settings.max_batch:
            raise ValueError(f"{len(positive) + len(negative)} examples; the most is {self.settings.max_batch}: "
                             "keep the ones that say most")
        return self._page(self.queries.examples(positive, negative, query, strategy))

    def image_of(self, result: dict) -> Image.Image | None:
        """A stored result's picture as a person sees their own file: through the one image module (decoded,
        EXIF orientation applied, transparency on white, RGB), enlarged when tiny; None when it cannot be shown."""
        try:
            image = to_rgb(resolve_image(result, self.settings.image_dir))
        except (SourceError, BadImage, OSError, KeyError, IndexError) as e:
            log.warning("cannot show %s: %s", result.get("id"), e)
            return None
        if max(image.size) < 96:  # tiny images (Fashion-MNIST's 28 px) are enlarged, pixels kept sharp
            scale = 96 // max(image.size) + 1
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        return image

    def search_batch(self, items: list[bytes], metric: str = "cosine", k: int = 10) -> list[dict]:
        """Each image's results, in order; a bad image gets an error entry instead of failing the batch."""
        self.check_batch(len(items))
        out = []
        for n, data in enumerate(items):
            try:
                results, prediction, query = self.search(data, metric, k)
                out.append({"index": n, "results": results, "predicted": max(prediction, key=prediction.get),
                            "query": query})
            except BadImage as e:
                out.append({"index": n, "error": str(e), "results": []})
        return out

    def check_batch(self, n: int) -> None:
        if n > self.settings.max_batch:
            raise ValueError(f"{n} images in one batch; the most is {self.settings.max_batch}: "
                             "send them in several batches")

    def duplicates(self, threshold: float = DUPLICATE_COSINE, sample: int = 1000) -> list[list[dict]]:
        """Groups of near-duplicates among `sample` stored images (connected pairs with cosine ≥ threshold)."""
        if not 1 <= int(sample) <= self.settings.max_sample:
            raise ValueError(f"the sample must be between 1 and {self.settings.max_sample} images, not {sample}")
        return duplicate_groups(self.require_store(), threshold, sample)

    def check_duplicates(self, data: bytes, threshold: float = DUPLICATE_COSINE) -> list[dict]:
        """Stored images that an upload would duplicate: the same bytes, or cosine ≥ threshold."""
        results, _, _ = self.search(data, "cosine", 10, threshold=float(threshold))
        digest = sha256(data)
        return [dict(r, identical=r["sha256"] == digest) for r in results]

    # --- the collection grows and shrinks ----------------------------------------------------------
    def add(self, items: list[tuple[bytes, str | None]]) -> tuple[list[dict], list[str]]:
        store = self.require_store()
        with self.write_lock:
            try:
                return add_images(self.embedder, store, items, self.settings.image_dir, self.profile)
            finally:
                self._changed()

    def delete(self, ids: list[str]) -> list[str]:
        """The ids deleted: those stored (an id that is not one, or not there, is no error: nothing to delete)."""
        store = self.require_store()
        with self.write_lock:
            try:
                return delete_images(store, self.settings.image_dir, [i for i in map(as_point_id, ids) if i])
            finally:
                self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def switch_model(self, model_dir: str) -> dict:
        """Embed the whole collection again with another model (indexer.reembed) and answer with it from then on.
        Searches go on meanwhile with the old model and vectors; writes wait until the swap is done."""
        embedder = Embedder(model_dir)
        def answer_with_it():  # under the open lock, with the swap: no query starts in between
            self.embedder, self.settings.model_dir, self.meta = embedder, model_dir, store.meta
            self._queries = QueryPath(embedder, store, self.meta, self.profile, self.profile_source)

        with self.write_lock:
            store = self.require_store()
            try:
                return reembed(store, embedder, self.settings.image_dir, self.settings.location,
                               swapping=self._open_lock, then=answer_with_it)
            finally:
                self._changed()

    def overview(self) -> dict:
        store = self.require_store()
        meta = store.meta
        return {"collection": self.settings.collection, "images": store.count(),
                "labels": dict(sorted(store.label_counts().items())),
                **{k: meta.get(k) for k in ("model", "model_sha256", "n_bits", "float_dim")}}


__all__ = ["SearchService", "Settings", "BadImage", "StoreError", "Store"]
