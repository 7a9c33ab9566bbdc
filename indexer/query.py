"""The one query path: a picture (its bytes) or a stored image (its id), and a query (metric, k, filters, page) →
hits, with what was done to the picture (how it was prepared; whether it is unlike the collection).

bytes ──► open_image ──► Embedder (prepared like the collection: its profile) ──► Store.search ──► Answer
id ──► Store.retrieve (its stored vectors: no model run) ──► Store.search (itself left out) ──► Answer
examples (ids and pictures, positive and negative) ──► their vectors ──► Store.search_examples ──► Answer

The app's endpoints, its batch endpoint, `python -m indexer search` and the benchmarks all search through it.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from indexer import ranking
from indexer.calibration import unlike_collection
from indexer.embedder import Embedder, Embeddings
from indexer.plans import Hit
from indexer.store import Store, StoreError
from training.images import open_image, sha256
from training.prepare import ImageProfile

CACHE_SIZE = 256  # uploads whose embeddings are kept, for paging without a model run


@dataclass(frozen=True)
class Query:
    """What to search for, the picture aside: a metric (indexer.ranking.REGISTRY), a page, and filters."""

    metric: str = "cosine"
    k: int = 10
    labels: tuple[str, ...] = ()
    threshold: float | None = None  # the metric's (ranking.Metric.threshold says what it means)
    offset: int = 0
    oversampling: int = ranking.OVERSAMPLING


@dataclass
class Answer:
    hits: list[Hit]
    offset: int
    predicted: dict[str, float] | str | None  # a picture's top classes (probabilities); a stored image's label
    query: dict  # what was done: `prepared` (or `like`), `unlike`, `nearest_cosine`, `calibrated_floor`

    def results(self) -> list[dict]:
        """The hits as the API gives them: rank (counting from the page's offset), id, score, label, source."""
        return [
            {"rank": self.offset + i + 1, "id": h.id, "score": round(h.score, 4), "label": h.payload.get("label"),
             "source": h.payload.get("source"), "sha256": h.payload.get("sha256")}
            for i, h in enumerate(self.hits)
        ]


def as_point_id(text: str | None) -> str | None:
    """A point id (a UUID) in its canonical form, or None for anything else."""
    try:
        return str(uuid.UUID(str(text or "").strip()))
    except ValueError:
        return None


class QueryPath:
    """Pictures and stored images searched in one collection, with one embedder and the collection's profile."""

    def __init__(self, embedder: Embedder, store: Store, meta: dict, profile: ImageProfile | None,
                 profile_source: str):
        self.embedder, self.store, self.meta = embedder, store, meta
        self.profile, self.profile_source = profile, profile_source
        self._cache: OrderedDict[str, Embeddings] = OrderedDict()  # upload sha → embeddings, for paging
        self._lock = threading.Lock()  # requests run in several threads

    def embed(self, data: bytes) -> Embeddings:
        """The picture's vectors (decoded and prepared like the collection's images), cached by its bytes."""
        key = f"{self.profile_source}:{sha256(data)}"  # the same bytes prepared another way embed differently
        with self._lock:
            emb = self._cache.get(key)
            if emb is not None:
                self._cache.move_to_end(key)
                return emb
        emb = self._either_shading(open_image(data))
        with self._lock:
            self._cache[key] = emb
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return emb

    def _either_shading(self, image) -> Embeddings:
        """The picture's vectors. A grey collection's object found on a surface is shaded by its darkness, and again
        by its lightness (training.shading): the one whose nearest stored image (cosine) is nearer is kept, the
        darkness on a tie."""
        ways = self.embedder.embed_readings(image, self.profile)
        if len(ways) == 1:
            return ways[0]
        nearest = [self.store.search("cosine", e.floats[0], e.codes[0], k=1) for e in ways]
        return ways[int(np.argmax([hits[0].score if hits else -np.inf for hits in nearest]))]

    def _search(self, q: Query, float_vector, code, exclude=None) -> list[Hit]:
        return self.store.search(q.metric, float_vector, code, k=int(q.k), offset=int(q.offset),
                                 labels=list(q.labels) or None, threshold=q.threshold, oversampling=q.oversampling,
                                 exclude=exclude)

    def picture(self, data: bytes, q: Query) -> Answer:
        """A picture's page of hits, its top-3 classes, how it was prepared and whether it is unlike the
        collection (its nearest stored image by cosine, against the calibrated floor)."""
        ranking.metric(q.metric)  # an unknown name is refused before any work
        emb = self.embed(data)
        hits = self._search(q, emb.floats[0], emb.codes[0])
        # The nearest stored image by cosine, for "unlike": a first unfiltered cosine page already has it at the top.
        first_cosine_page = q.metric == "cosine" and q.offset == 0 and not q.labels and hits
        nearest = hits[:1] if first_cosine_page else self.store.search("cosine", emb.floats[0], emb.codes[0], k=1)
        query = {"prepared": dict(emb.prepared[0], profile=self.profile_source),
                 **unlike_collection(nearest[0].score if nearest else None, self.meta)}
        probs = emb.probs[0]
        top = {self.embedder.labels[i]: float(probs[i]) for i in np.argsort(-probs)[:3]}
        return Answer(hits, int(q.offset), top, query)

    def _no_picture(self, **what) -> dict:
        """The query of a search by stored vectors: nothing prepared, nothing to call unlike the collection."""
        return {**what, "prepared": None, "unlike": False, "nearest_cosine": None,
                "calibrated_floor": unlike_collection(None, self.meta)["calibrated_floor"]}

    def _stored_item(self, point_id: str) -> Hit:
        """A stored image with its vectors, or a sentence saying what to give instead."""
        given = str(point_id or "").strip()
        if not given:
            raise ValueError("give the id of a stored image (the `id` of a search result)")
        pid = as_point_id(given)
        if pid is None:
            raise ValueError(f"{given!r} is not an image id (ids look like 2f1c…-…: the `id` of a search "
                             "result); search again and pick one of the results")
        found = self.store.retrieve([pid], with_vectors=True)
        if not found or found[0].float_vector is None or found[0].code_vector is None:
            raise StoreError(f"no stored image has the id {pid!r} (it may have been deleted): "
                             "search again and pick one of the results")
        return found[0]

    def _example(self, given: str | bytes) -> tuple[Hit, dict]:
        """An example as vectors (a stored image's own, or a picture's) and as the answer names it."""
        if isinstance(given, bytes):
            emb = self.embed(given)
            return Hit("", 0.0, {}, emb.floats[0], emb.codes[0]), {"picture": sha256(given)}
        item = self._stored_item(given)
        return item, {"id": item.id, "label": item.payload.get("label")}

    def examples(self, positive: list[str | bytes], negative: list[str | bytes], q: Query,
                 strategy: str = "average_vector") -> Answer:
        """More like the positives, less like the negatives: each a stored image's id (its stored vectors) or a
        picture (embedded like any upload), by `indexer.ranking`'s strategies; the stored examples are left out of
        the hits. The answer's `predicted` is None; its query names the examples (`examples`) and the strategy."""
        ranking.strategy(strategy, q.metric, len(positive))
        pos, neg = ([self._example(g) for g in group] for group in (positive, negative))
        exclude = [h.id for h, _ in pos + neg if h.id]
        hits = self.store.search_examples(q.metric, strategy, [h for h, _ in pos], [h for h, _ in neg], int(q.k),
                                          int(q.offset), list(q.labels) or None, q.threshold, q.oversampling,
                                          exclude)
        query = self._no_picture(examples={"positive": [n for _, n in pos], "negative": [n for _, n in neg]},
                                 strategy=strategy)
        return Answer(hits, int(q.offset), None, query)

    def stored(self, point_id: str, q: Query) -> Answer:
        """More like a stored image: its own stored vectors are the query (no model run), and it is left out of
        its hits. The answer's `predicted` is its label, its query says which image (`like`)."""
        ranking.metric(q.metric)
        item = self._stored_item(point_id)
        hits = self._search(q, item.float_vector, item.code_vector, exclude=[item.id])
        like = {"id": item.id, "label": item.payload.get("label"), "source": item.payload.get("source")}
        query = self._no_picture(like=like)
        return Answer(hits, int(q.offset), like["label"], query)
