"""Each metric's rule (`indexer.ranking`) as requests an engine answers: a typed plan (`Nearest`, `Filters`) and
the search every store shares (`SearchPlans.search`), ranking inside the engine.

The likely case first: a class's images often share one code, so at least the points wanted share the query's
code, and the answer is a cosine search filtered to that code (a keyword index). Else a scan of the nearest codes
(binary-quantized ±1: exact integer distances) finds the cut-off distance; the points within it are ranked by
cosine, by their ids when the scan holds them all, else by a filter on the codes within a small radius
(`BALL_RADIUS`) or a prefetch of up to `TIE_LIMIT` points.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import numpy as np

from indexer import ranking

TIE_LIMIT = 10_000  # points tied at a Hamming cut-off that a prefetch orders exactly by cosine
BALL_RADIUS = 2  # a tie at up to this many bits is a filter on the codes within it; beyond, a prefetch
# A collection of up to this many points is searched exactly: a scan of its vectors takes milliseconds
# (bench/search.py), while an HNSW graph can leave a point unreachable (an image that does not find itself).
# Larger collections use the graph.
EXACT_UP_TO = 200_000
SIZE_CHECK_SECONDS = 60  # how often a store counts its points to decide that
# The payload fields a collection indexes (keyword): what searches filter on (Filters), so a filtered exact scan
# reads an index instead of every point's payload.
INDEXED_FIELDS = ("label", "code", "source.split")
SPARE = 4  # extra points fetched at a cut so that equal cosines (the same image twice) are ordered by id


def full_scan_kb(float_dim: int) -> int:
    """The float index's full-scan threshold (KB of vectors): a filtered cosine search over up to TIE_LIMIT points
    scans them exactly (an HNSW graph serves only larger filtered sets), so a tie is ordered exactly."""
    return max(10_000, -(-TIE_LIMIT * float_dim * 4 // 1024))


@dataclass
class Hit:
    """A point an engine answered with: its id, its score for the request, its payload and, when asked, vectors."""

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
class Examples:
    """A best_score recommendation (`indexer.ranking.best_scores`): the examples' vectors, scored against each."""

    positives: tuple[tuple[float, ...], ...]
    negatives: tuple[tuple[float, ...], ...] = ()


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
    originals: bool = False  # score with the original vectors, never quantized ones (a tie's order is exact)
    prefetch: Nearest | None = None  # rank only what this request returns
    payload: bool = True
    examples: Examples | None = None  # rank by Qdrant's best_score over these instead of nearness to `vector`


class SearchPlans(ABC):
    """The search of every store, made of its engine's `_query`, `_query_batch` and `retrieve`."""

    @abstractmethod
    def _query(self, request: Nearest) -> list[Hit]:
        """The points nearest `request.vector`, ranked inside the engine."""

    @abstractmethod
    def _query_batch(self, requests: list[Nearest]) -> list[list[Hit]]:
        """`_query` for several requests in one round trip."""

    @abstractmethod
    def retrieve(self, ids: list[str], with_vectors: bool | list[str] = False) -> list[Hit]:
        """The points of these ids that exist (with their vectors: True, or the names wanted)."""

    _small, _sized_at = True, float("-inf")  # the last count's verdict (`_small_enough`), and when it was taken

    def _small_enough(self) -> bool:
        """Whether the collection holds at most EXACT_UP_TO points (counted at most every SIZE_CHECK_SECONDS)."""
        now = time.monotonic()
        if now - self._sized_at > SIZE_CHECK_SECONDS:
            self._small, self._sized_at = self.count() <= EXACT_UP_TO, now
        return self._small

    def _with_payloads(self, hits: list[Hit]) -> list[Hit]:
        """Hits found without their payloads, given them (a point deleted meanwhile is left out)."""
        found = {h.id: h.payload for h in self.retrieve([h.id for h in hits])}
        for h in hits:
            h.payload = found.get(h.id, {})
        return [h for h in hits if h.id in found]

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
        plan = getattr(self, ranking.metric(metric).plan)
        exact = exact or self._small_enough()
        fvec = tuple(np.asarray(float_vector, dtype=np.float64).tolist())
        filters = Filters(tuple(labels or ()), split, tuple(exclude or ()))
        return plan(fvec, np.asarray(code, dtype=np.uint8), k, offset, filters, exact, threshold, oversampling)

    def search_examples(self, metric: str, strategy: str, positives: list[Hit], negatives: list[Hit], k: int = 10,
                        offset: int = 0, labels: list[str] | None = None, threshold: float | None = None,
                        oversampling: int = ranking.OVERSAMPLING, exclude: list[str] | None = None) -> list[Hit]:
        """More like the positives, less like the negatives (hits with their vectors), by `indexer.ranking`'s
        strategies: average_vector is one query, searched by `metric` as a picture is; best_score (cosine only)
        is Qdrant's recommendation query, scored inside the engine."""
        ranking.strategy(strategy, metric, len(positives))
        pos_f, neg_f = ([h.float_vector for h in hits] for hits in (positives, negatives))
        if strategy == "average_vector":
            fvec, code = ranking.examples_query(pos_f, [h.code_vector for h in positives], neg_f or None,
                                                [h.code_vector for h in negatives] or None)
            return self.search(metric, fvec, code, k, offset, labels, threshold, oversampling, exclude=exclude)
        examples = Examples(*(tuple(tuple(np.asarray(v, dtype=np.float64).tolist()) for v in vs)
                              for vs in (pos_f, neg_f)))
        filters = Filters(tuple(labels or ()), None, tuple(exclude or ()))
        return self._query(Nearest("float", (), k, filters, offset, threshold, self._small_enough(), examples=examples))

    # --- one plan per metric (ranking.REGISTRY names it): (fvec, code, k, offset, filters, exact, threshold,
    # oversampling) -> the page of hits
    def _cosine(self, fvec, code, k, offset, filters: Filters, exact, threshold, oversampling) -> list[Hit]:
        return self._query(Nearest("float", fvec, k, filters, offset, threshold, exact))

    def _hamming(self, fvec, code, k, offset, filters: Filters, exact, threshold, oversampling) -> list[Hit]:
        return self._hamming_first(fvec, code, k + offset, filters, exact, threshold)[offset : k + offset]

    def _rerank(self, fvec, code, k, offset, filters: Filters, exact, threshold, oversampling) -> list[Hit]:
        want = k + offset
        hits = self._rerank_first(fvec, code, max(want * oversampling, want), want, filters, exact)
        return [h for h in hits if threshold is None or h.score >= threshold][offset:want]

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
                           exact=exact, originals=True)
        dot = ranking.dot_of_distance(radius + 0.5, len(code))
        prefetch = Nearest("code", tuple(ranking.signs(code).tolist()), TIE_LIMIT, filters, threshold=dot)
        return Nearest("float", fvec, limit, filters, exact=exact, originals=True, prefetch=prefetch)

    def _hamming_first(self, fvec, code, want: int, filters: Filters, exact: bool,
                       threshold: float | None) -> list[Hit]:
        """The first `want` by distance, then cosine, then id. First the likely case: at least `want` points share
        the query's code (d = 0), and the answer is the best by cosine among them. Else a scan of the nearest codes
        gives the cut-off distance d; the points within d, when the scan holds them all, else those nearer than d and
        the best by cosine of those tied at d (a filter or a prefetch), are scored by cosine inside the engine."""
        same = self._query(self._by_cosine_within(fvec, code, 0, want + SPARE, filters, exact))
        if len(same) >= want:
            return _by_distance_then_cosine(same, {h.id: 0 for h in same})
        d, scan, complete = self._scan_to(code, want, filters, threshold)
        distance = {h.id: h.score for h in scan if d is None or h.score < d or (complete and h.score == d)}
        requests = [Nearest("float", fvec, len(distance), replace(filters, only=tuple(distance)), exact=exact,
                            originals=True)]
        if not complete:  # the tie at d goes on beyond the scan
            others = replace(filters, exclude=filters.exclude + tuple(distance))
            requests.append(self._by_cosine_within(fvec, code, d, want - len(distance) + SPARE, others, exact))
        hits = [h for answer in self._query_batch([r for r in requests if r.limit]) for h in answer]
        return _by_distance_then_cosine(hits, {h.id: d for h in hits} | distance)

    def _rerank_first(self, fvec, code, candidates: int, want: int, filters: Filters, exact: bool) -> list[Hit]:
        """The first `want` of every point within the Hamming distance r of the `candidates`-th nearest code, by
        cosine. First the likely case: `candidates` points share the query's code (r = 0)."""
        first = self._by_cosine_within(fvec, code, 0, max(candidates, want + SPARE), filters, exact)
        same = self._query(replace(first, payload=False))  # payloads for the `want` kept only
        if len(same) >= candidates:
            return self._with_payloads(_by_cosine(same)[:want])
        r, scan, complete = self._scan_to(code, candidates, filters)
        if r is None:  # the whole (filtered) collection is within reach
            return _by_cosine(self._query(Nearest("float", fvec, want + SPARE, filters, exact=exact, originals=True)))
        if complete:
            within = tuple(h.id for h in scan if h.score <= r)
            return _by_cosine(self._query(Nearest("float", fvec, want + SPARE, replace(filters, only=within),
                                                  exact=exact, originals=True)))[:want]
        return _by_cosine(self._query(self._by_cosine_within(fvec, code, r, want + SPARE, filters, exact)))[:want]


def _by_cosine(hits: list[Hit]) -> list[Hit]:
    """Higher cosine first, then id: equal cosines (the same image stored twice) in a fixed order."""
    return sorted(hits, key=lambda h: (-h.score, h.id))


def _by_distance_then_cosine(hits: list[Hit], distance: dict[str, float]) -> list[Hit]:
    """Hits scored by cosine, rescored by their distance in bits and ordered by distance, cosine, id."""
    for h in hits:
        h.cosine, h.score = h.score, float(distance[h.id])
    return sorted(hits, key=lambda h: (h.score, -h.cosine, h.id))
