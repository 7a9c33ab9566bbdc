"""The search service behind the UI and the API: the indexer's embedder and store, plus what a page needs.

Plain Python, so the Gradio layer (app/main.py) only maps components to these calls.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from app.access import Access, RateLimiter
from app.fetch import MAX_REDIRECTS, TIMEOUT_S, Fetcher, parse_networks
from indexer import ranking
from indexer.calibration import UNLIKE_PERCENTILE, unlike_collection
from indexer.embedder import Embedder, Embeddings
from indexer.factory import open_store
from indexer.plans import Hit
from indexer.sources import SourceError, resolve_image
from indexer.store import Store, StoreError
from indexer.uploads import add_images, drop_marked, image_dir_of, mark_deleting, reconcile
from training import config
from training.config import resolve_location
from training.images import BadImage, open_image, sha256, to_rgb

log = logging.getLogger(__name__)
DUPLICATE_COSINE = 0.98  # near-duplicates: cosine at least this (the API's and the page's default)


@dataclass
class Settings:
    model_dir: str = config.DEFAULTS["model"]
    collection: str = config.DEFAULTS["collection"]
    qdrant: str | None = None  # folder, URL or :memory:; None: training.config.resolve_location
    data_dir: str = config.DEFAULTS["data_dir"]
    max_upload_mb: float = 10.0
    oversampling: int = ranking.OVERSAMPLING
    examples: int = 10
    url_allow_networks: str = ""  # networks an image URL may point into although not public (app/fetch.py)
    url_timeout_s: float = TIMEOUT_S
    url_max_redirects: int = MAX_REDIRECTS
    # Who may write, and fair use (app/access.py)
    admin_token: str = field(default="", repr=False)  # never printed with the settings
    public: bool = False  # reachable beyond loopback, or a Space: read-only unless a credential is shown
    read_only: bool | None = None  # None: decided by `public` and the credentials configured
    oauth: bool = False  # "Sign in with Hugging Face" (a Space with hf_oauth, or Gradio's mocked login)
    write_users: str = ""  # Hugging Face users who may write (the Space's owner always may)
    write_orgs: str = ""  # ... and members of these organisations
    trusted_hops: int = 0  # proxies of the operator's in front of the app (app.access.client_address)
    requests_per_min: int = 120  # per client; 0: no limit
    upload_mb_per_min: float = 100.0  # pictures sent per client; 0: no limit
    max_k: int = 100  # results per page
    max_batch: int = 32  # images per /search_batch
    max_sample: int = 2000  # images sampled per /duplicates

    @property
    def image_dir(self) -> Path:
        return image_dir_of(self.data_dir)

    @property
    def location(self) -> str:
        """Where the collection lives (training.config.resolve_location, with this app's data dir)."""
        return resolve_location(self.qdrant, self.data_dir)


class SearchService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedder = Embedder(settings.model_dir)
        self._store: Store | None = None
        self.meta: dict = {}
        self.reconciled: dict = {}  # what opening the collection found half done (indexer.uploads.reconcile)
        self.profile, self.profile_source = self.embedder.profile_for(None)
        self._store_error: str | None = None
        self._write_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[str, Embeddings] = OrderedDict()  # upload sha → embeddings, for paging
        self.fetcher = Fetcher(max_bytes=int(settings.max_upload_mb * 1024 * 1024), timeout_s=settings.url_timeout_s,
                               max_redirects=settings.url_max_redirects,
                               allow=parse_networks(settings.url_allow_networks))
        owners = ",".join(filter(None, (settings.write_users, os.environ.get("SPACE_AUTHOR_NAME"))))
        self.access = Access(settings.admin_token, settings.public, settings.read_only, settings.oauth, owners,
                             settings.write_orgs)
        self.limiter = RateLimiter(settings.requests_per_min, int(settings.upload_mb_per_min * 2**20))
        settings.image_dir.mkdir(parents=True, exist_ok=True)
        _ = self.store  # open now if we can; if not, the page says why and each request tries again

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
                    self.profile, self.profile_source = self.embedder.profile_for(self.meta)
                    with self._write_lock:  # writes a crash left half done are finished before any other
                        self.reconciled = reconcile(self.embedder, store, self.settings.image_dir, self.profile)
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
        lost = len(self.reconciled.get("points_without_file") or [])
        warning = f" · ⚠️ {lost} stored images have lost their files (the log names them)" if lost else ""
        return f"{count:,} images in `{self.settings.collection}`, model `{self.embedder.meta['model']}`{warning}"

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- queries ---------------------------------------------------------------------------------
    def read_upload(self, path: str | Path) -> bytes:
        path = Path(path)
        limit = int(self.settings.max_upload_mb * 1024 * 1024)
        size = path.stat().st_size
        if size > limit:
            raise BadImage(
                f"the file is {size / 1e6:.1f} MB; the limit is {self.settings.max_upload_mb:g} MB: "
                "upload a smaller image"
            )
        return path.read_bytes()

    def read_url(self, url: str) -> bytes:
        """The bytes of an image URL, fetched safely (app/fetch.py); decoded later like any upload."""
        return self.fetcher.fetch(url)

    def embed_upload(self, data: bytes) -> Embeddings:
        key = f"{self.profile_source}:{sha256(data)}"  # the same bytes prepared another way embed differently
        with self._cache_lock:  # requests run in several threads
            emb = self._cache.get(key)
            if emb is not None:
                self._cache.move_to_end(key)
                return emb
        emb = self.embedder.embed([open_image(data)], self.profile)
        with self._cache_lock:
            self._cache[key] = emb
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        return emb

    def predict(self, emb: Embeddings, top: int = 3) -> dict[str, float]:
        probs = emb.probs[0]
        order = np.argsort(-probs)[:top]
        return {self.embedder.labels[i]: float(probs[i]) for i in order}

    def search(
        self,
        data: bytes,
        metric: str = "cosine",
        k: int = 10,
        labels: list[str] | None = None,
        threshold: float | None = None,
        offset: int = 0,
    ) -> tuple[list[dict], dict[str, float], dict]:
        """Results, the predicted class (top 3), and what happened to the query: how it was prepared, and whether
        it is unlike the collection (with a sentence for the page)."""
        store = self._checked(metric, k)
        emb = self.embed_upload(data)
        hits = self._hits(store, metric, emb.floats[0], emb.codes[0], k, labels, threshold, offset)
        # The nearest stored image by cosine, for "unlike": a first unfiltered cosine page already has it at the top.
        first_cosine_page = metric == "cosine" and offset == 0 and not labels and hits
        nearest = hits[:1] if first_cosine_page else store.search("cosine", emb.floats[0], emb.codes[0], k=1)
        query = {"prepared": dict(emb.prepared[0], profile=self.profile_source),
                 **unlike_collection(nearest[0].score if nearest else None, self.meta)}
        query["note"] = query_note(query)
        return self._results(hits, offset), self.predict(emb), query

    def search_by_id(
        self,
        point_id: str,
        metric: str = "cosine",
        k: int = 10,
        labels: list[str] | None = None,
        threshold: float | None = None,
        offset: int = 0,
    ) -> tuple[list[dict], str | None, dict]:
        """More like a stored image: its own stored vectors are the query (no model run), and it is left out of
        its results. Returns the results, the stored image's label, and the query (`like`: id, label, source)."""
        store = self._checked(metric, k)
        given = str(point_id or "").strip()
        if not given:
            raise ValueError("give the id of a stored image (the `id` of a search result)")
        point_id = _as_point_id(given)
        if point_id is None:
            raise ValueError(f"{given!r} is not an image id (ids look like 2f1c…-…: the `id` of a search "
                             "result); search again and pick one of the results")
        found = store.retrieve([point_id], with_vectors=True)
        if not found or found[0].float_vector is None or found[0].code_vector is None:
            raise StoreError(f"no stored image has the id {point_id!r} (it may have been deleted): "
                             "search again and pick one of the results")
        item = found[0]
        hits = self._hits(store, metric, item.float_vector, item.code_vector, k, labels, threshold, offset,
                          exclude=[item.id])
        like = {"id": item.id, "label": item.payload.get("label"), "source": item.payload.get("source")}
        query = {"like": like, "prepared": None, "unlike": False, "nearest_cosine": None,
                 "calibrated_floor": unlike_collection(None, self.meta)["calibrated_floor"]}
        query["note"] = query_note(query)
        return self._results(hits, offset), like["label"], query

    def _checked(self, metric: str, k: int) -> Store:
        ranking.metric(metric)  # an unknown name is refused before any work
        if not 1 <= int(k) <= self.settings.max_k:
            raise ValueError(f"k must be between 1 and {self.settings.max_k}, not {k}; page on with /search_next "
                             "(the Next k button) for more")
        return self.require_store()

    def _hits(self, store: Store, metric, float_vector, code, k, labels, threshold, offset, exclude=None) -> list[Hit]:
        return store.search(metric, float_vector, code, k=int(k), offset=int(offset), labels=labels or None,
                            threshold=threshold, oversampling=self.settings.oversampling, exclude=exclude)

    @staticmethod
    def _results(hits: list[Hit], offset: int) -> list[dict]:
        return [
            {"rank": int(offset) + i + 1, "id": h.id, "score": round(h.score, 4), "label": h.payload.get("label"),
             "source": h.payload.get("source"), "sha256": h.payload.get("sha256")}
            for i, h in enumerate(hits)
        ]

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
        pairs = self.require_store().duplicate_pairs(float(threshold), sample=int(sample))
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        best: dict[str, float] = {}
        for a, b, score in pairs:
            parent[root(a)] = root(b)
            best[a], best[b] = max(best.get(a, 0), score), max(best.get(b, 0), score)
        groups: dict[str, list[str]] = {}
        for x in parent:
            groups.setdefault(root(x), []).append(x)
        records = {h.id: h for h in self.require_store().retrieve(list(parent))}
        out = [
            [{"id": i, "label": records[i].payload.get("label"), "source": records[i].payload.get("source"),
              "sha256": records[i].payload.get("sha256"), "best_score": round(best[i], 4)}
             for i in sorted(ids) if i in records]
            for ids in groups.values()
        ]
        return sorted((g for g in out if len(g) > 1), key=len, reverse=True)

    def check_duplicates(self, data: bytes, threshold: float = DUPLICATE_COSINE) -> list[dict]:
        """Stored images that an upload would duplicate: the same bytes, or cosine ≥ threshold."""
        results, _, _ = self.search(data, "cosine", 10, threshold=float(threshold))
        digest = sha256(data)
        return [dict(r, identical=r["sha256"] == digest) for r in results]

    # --- the collection grows and shrinks ----------------------------------------------------------
    def add(self, items: list[tuple[bytes, str | None]]) -> tuple[list[dict], list[str]]:
        store = self.require_store()
        with self._write_lock:
            return add_images(self.embedder, store, items, self.settings.image_dir, self.profile)

    def delete(self, ids: list[str]) -> list[str]:
        """The ids deleted: those stored (an id that is not one, or not there, is no error: nothing to delete)."""
        store = self.require_store()
        ids = [i for i in (_as_point_id(i) for i in ids) if i]
        with self._write_lock:
            found = store.retrieve(ids) if ids else []
            # file marked first, point deleted, then the file removed: a crash in between is finished at the next start
            files = [(h.payload.get("source") or {}).get("file") for h in found]
            marked = mark_deleting(self.settings.image_dir, [f for f in files if f])
            if found:
                store.delete([h.id for h in found])
            drop_marked(marked)
        return [h.id for h in found]

    def overview(self) -> dict:
        store = self.require_store()
        meta = store.meta
        return {
            "collection": self.settings.collection,
            "images": store.count(),
            "labels": dict(sorted(store.label_counts().items())),
            "model": meta.get("model"),
            "model_sha256": meta.get("model_sha256"),
            "n_bits": meta.get("n_bits"),
            "float_dim": meta.get("float_dim"),
        }

    def example_files(self) -> list[str]:
        """One stored image per label (up to `examples`), written once under <data_dir>/examples."""
        out = Path(self.settings.data_dir) / "examples"
        existing = sorted(str(p) for p in out.glob("*.png"))
        if existing or self.store is None:
            return existing
        out.mkdir(parents=True, exist_ok=True)
        seen: dict[str, dict] = {}
        hits, _ = self._store.scroll(limit=500)
        for h in hits:
            seen.setdefault(h.payload.get("label"), dict(h.payload, id=h.id))
        files = []
        for n, (label, payload) in enumerate(sorted(seen.items(), key=lambda kv: str(kv[0]))):
            if n >= self.settings.examples:
                break
            image = self.image_of(payload)
            if image is None:
                continue
            safe = "".join(c if c.isalnum() else "_" for c in str(label))
            path = out / f"{n:02d}_{safe}.png"
            image.save(path)
            files.append(str(path))
        return files


def _as_point_id(text: str | None) -> str | None:
    """A point id (a UUID) in its canonical form, or None for anything else."""
    try:
        return str(uuid.UUID(str(text or "").strip()))
    except ValueError:
        return None


def query_note(query: dict) -> str:
    """One plain sentence for the page: a warning when the picture is unlike the collection, else how the picture
    was prepared."""
    prep = query.get("prepared") or {}
    if query.get("like"):
        like = query["like"]
        return (f"More like the stored image `{like['id']}` ({like['label'] or 'no label'}): searched with its stored "
                "vectors, and left out of its own results.")
    if query.get("unlike"):
        return (f"⚠️ This picture is unlike the collection's images: its nearest stored image scores "
                f"{query['nearest_cosine']:.3f}, lower than {100 - UNLIKE_PERCENTILE} % of the collection's own images "
                "score against their "
                f"nearest ({query['calibrated_floor']:.3f}). These are the closest images there are, not matches.")
    if not prep.get("prepared"):
        why = {"off": "preparation is off: PREPARE=0, or the collection was indexed that way",
               "none": "neither the collection nor the model has an image profile"}.get(prep.get("profile"), "")
        return f"The picture was searched as it is ({why})." if why else "The picture was searched as it is."
    if prep.get("object") is None:
        return "No object stood out from the background; the whole picture was searched."
    done = ["object found and framed like the collection's images"]
    if prep.get("inverted"):
        done.append("light and dark swapped to match the collection")
    if prep.get("grey"):
        done.append("converted to grey")
    if prep.get("stretched"):
        done.append(f"its contrast stretched {prep['stretched']}×")
    return "Prepared: " + ", ".join(done) + f" (profile: the {prep['profile']}'s)."


__all__ = ["SearchService", "Settings", "BadImage", "StoreError"]
