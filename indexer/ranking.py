"""The ranking rules, once, in NumPy: the reference that evaluation, benchmarks and tests rank with, and that the
Qdrant search plans (`indexer.store`) must reproduce.

- **cosine**: higher cosine similarity of the L2-normalised float features first.
- **hamming**: fewer differing bits of the binary codes first; inside a tie, higher cosine first (64-bit codes
  tie often: a class's images may share one code); then database order.
- **hamming+rerank**: every point within the Hamming distance r of the `candidates`-th nearest code, by cosine;
  the rest after them, as hamming orders them. Cutting a tie at r arbitrarily would make the answer depend on
  which tied points an engine happened to return first.

Codes are 0/1 bytes here and in the embedder; the store keeps them as ±1 with Dot distance (one bit per bit under
Qdrant's binary quantization): for n bits, Hamming = (n − dot) / 2.

Each metric is one `Metric` in `REGISTRY`: its NumPy rule (`key`), the search plan that answers it inside the engine
(`plan`, a method of `indexer.plans.SearchPlans`), what its score and threshold mean and how a caption shows the
score. The app, evaluation, the benchmarks and the tests iterate over it; a new metric is one entry here, its plan,
and its tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OVERSAMPLING = 4  # hamming+rerank: candidates per result asked for


def hamming(q_codes: np.ndarray, db_codes: np.ndarray) -> np.ndarray:
    """Hamming distances, queries × database, of 0/1 codes (integers, as float32)."""
    q, d = q_codes.astype(np.float32), db_codes.astype(np.float32)
    return q @ (1 - d).T + (1 - q) @ d.T


def signs(codes: np.ndarray) -> np.ndarray:
    """0/1 codes as the ±1 vectors the store keeps."""
    return np.asarray(codes, dtype=np.float32) * 2 - 1


def bits(vectors: np.ndarray) -> np.ndarray:
    """Stored code vectors back to 0/1 bytes (±1, or 0/1 from a collection built before the ±1 layout)."""
    return (np.asarray(vectors) > 0).astype(np.uint8)


def distance_of_dot(dot: float, n_bits: int) -> int:
    return round((n_bits - dot) / 2)


def dot_of_distance(distance: float, n_bits: int) -> float:
    return n_bits - 2 * distance


def code_key(code: np.ndarray) -> str:
    """A code as the hex string stored in the `code` payload field (keyword-indexed: a tie is a filter)."""
    return np.packbits(np.asarray(code, dtype=np.uint8)).tobytes().hex()


def ball_keys(code: np.ndarray, radius: int) -> list[str]:
    """The keys of every code within `radius` bits of `code` (1 + n + n(n−1)/2 … of them)."""
    code = np.asarray(code, dtype=np.uint8)
    keys = [code_key(code)]
    for r in range(1, radius + 1):
        flips = np.array(list(itertools.combinations(range(len(code)), r)), dtype=np.intp)
        variants = np.repeat(code[None], len(flips), axis=0)
        variants[np.repeat(np.arange(len(flips)), r), flips.ravel()] ^= 1
        keys += [row.tobytes().hex() for row in np.packbits(variants, axis=1)]
    return keys


def _cosine_key(cos: np.ndarray, distance: Callable[[], np.ndarray], candidates: int) -> np.ndarray:
    return -cos


def _hamming_key(cos: np.ndarray, distance: Callable[[], np.ndarray], candidates: int) -> np.ndarray:
    return distance() * 4 - cos  # |cos| ≤ 1: the distance stays primary, cosine inside a tie


def _rerank_key(cos: np.ndarray, distance: Callable[[], np.ndarray], candidates: int) -> np.ndarray:
    dist = distance()
    # -cos - 2 < -1 ≤ dist * 4 - cos, so the points within the radius come first, by cosine; the rest as hamming
    last = min(candidates, dist.shape[1]) - 1
    radius = np.partition(dist, last, axis=1)[:, last : last + 1]
    return np.where(dist <= radius, -cos - 2, dist * 4 - cos)


@dataclass(frozen=True)
class Metric:
    """One way of ranking: everything about it that the product, evaluation and the benchmarks need."""

    name: str  # as the API and the page name it
    help: str  # one line for the metric picker
    threshold: str  # what a score threshold means for it
    distance: bool  # its score is a distance in bits (lower is nearer), else a cosine (higher is nearer)
    key: Callable  # (cosines, () -> Hamming distances, candidates) -> sort key, lower first (the NumPy reference)
    plan: str  # the indexer.plans.SearchPlans method that answers it inside the engine

    @property
    def report_key(self) -> str:
        """Its name in reports and JSON keys (evaluation's summary, the benchmarks' figures)."""
        return self.name.replace("+", "_")

    def caption(self, score: float) -> str:
        """A score as a person reads it."""
        return f"{int(score)} bits apart" if self.distance else f"similarity {score:.3f}"


REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("cosine", "cosine similarity of the float features (1 = same direction)", "the least cosine similarity",
           distance=False, key=_cosine_key, plan="_cosine"),
    Metric("hamming", "Hamming distance between the binary codes, in bits (0 = same code); ties broken by cosine",
           "the most Hamming distance, in bits", distance=True, key=_hamming_key, plan="_hamming"),
    Metric("hamming+rerank", "the images within the Hamming radius of the k×oversampling nearest codes, re-ranked "
           "by cosine", "the least cosine similarity", distance=False, key=_rerank_key, plan="_rerank"),
)}
METRICS = tuple(REGISTRY)


def metric(name: str) -> Metric:
    """The metric of that name, or ValueError naming the ones there are (the one check of a metric's name)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


# --- several examples as one query: Qdrant's recommendation strategies ------------------------------------------
# average_vector: one query, 2·mean(positives) − mean(negatives) (Qdrant's formula), searched by any metric. Its
# code is that formula over the examples' ±1 codes, as signs (a tie is 0): a bit all positives agree on keeps their
# value, one they disagree on may go against the negatives. A negative example changes a Hamming search through
# those bits and through the cosine that orders a tie.
# best_score: every point scored against each example (cosine): its best positive, unless a negative is nearer; then
# below every such point, by how far it is from its nearest negative (Qdrant's rule, squashed into (−1, 1)).
STRATEGIES = ("average_vector", "best_score")


def strategy(name: str, metric_name: str, positives: int) -> str:
    """The strategy of that name for that metric and that many positive examples, or ValueError saying what to do
    (the one check of the three)."""
    if not positives:
        raise ValueError("give at least one example of what to find: a result's id or a picture marked "
                         "'more like this'")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "best_score" and metric(metric_name).name != "cosine":
        raise ValueError("best_score compares each result with each example by cosine: use it with the cosine "
                         "metric, or average_vector with the Hamming metrics")
    return name


def average_vector(positives: np.ndarray, negatives: np.ndarray | None = None) -> np.ndarray:
    """Qdrant's average_vector query: mean(positives) when there are no negatives, else 2·mean(p) − mean(n)."""
    pos = np.atleast_2d(np.asarray(positives, dtype=np.float64))
    neg = np.asarray(negatives if negatives is not None else [], dtype=np.float64).reshape(-1, pos.shape[1])
    return pos.mean(0) if not len(neg) else 2 * pos.mean(0) - neg.mean(0)


def examples_query(pos_floats, pos_codes, neg_floats=None, neg_codes=None) -> tuple[np.ndarray, np.ndarray]:
    """average_vector's one query: the float vector (L2-normalised) and the 0/1 code."""
    fvec = average_vector(pos_floats, neg_floats)
    norm = np.linalg.norm(fvec)
    if norm < 1e-9:
        raise ValueError("the examples cancel out (the same pictures given as both positive and negative): "
                         "take one of them out")
    code = average_vector(signs(pos_codes), None if neg_codes is None else signs(neg_codes)) > 0
    return (fvec / norm).astype(np.float32), code.astype(np.uint8)


def best_scores(pos_floats, neg_floats, db_floats: np.ndarray) -> np.ndarray:
    """best_score's score of every database point (higher first), as Qdrant computes it from cosines."""
    def best(examples):
        ex = np.asarray(examples if examples is not None else [], dtype=np.float64).reshape(-1, db_floats.shape[1])
        if not len(ex):
            return np.full(len(db_floats), -2.0)  # below every cosine: no example of that kind
        ex = ex / np.linalg.norm(ex, axis=1, keepdims=True)
        return (ex @ db_floats.T).max(0)

    def squash(x):
        return 0.5 * (x / (1 + np.abs(x)) + 1)

    pos, neg = best(pos_floats), best(neg_floats)
    return np.where(pos > neg, squash(pos), -squash(neg))


def rank_examples(strategy_name: str, metric_name: str, pos_floats, pos_codes, neg_floats, neg_codes,
                  db_floats: np.ndarray, db_codes: np.ndarray, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """Database indices in ranked order for several examples as one query (the reference of /search_examples)."""
    strategy(strategy_name, metric_name, len(pos_floats))
    if strategy_name == "best_score":
        return np.argsort(-best_scores(pos_floats, neg_floats, db_floats), kind="stable")
    fvec, code = examples_query(pos_floats, pos_codes, neg_floats, neg_codes)
    return rank(metric_name, fvec, code, db_floats, db_codes, candidates)[0]


def sort_keys(name: str, q_floats: np.ndarray, q_codes: np.ndarray, db_floats: np.ndarray,
              db_codes: np.ndarray, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """The rule as one number per (query, database point): lower ranks first; equal keys in database order.
    `candidates`: hamming+rerank's k × oversampling."""
    rule = metric(name)
    cos = np.atleast_2d(q_floats) @ db_floats.T
    return rule.key(cos, lambda: hamming(np.atleast_2d(q_codes), db_codes), candidates)


def rank(metric: str, q_floats: np.ndarray, q_codes: np.ndarray, db_floats: np.ndarray, db_codes: np.ndarray,
         candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """Database indices in ranked order, one row per query, by `metric` (see the module's rules)."""
    return np.argsort(sort_keys(metric, q_floats, q_codes, db_floats, db_codes, candidates), axis=1, kind="stable")


def top(metric: str, q_float: np.ndarray, q_code: np.ndarray, db_floats: np.ndarray, db_codes: np.ndarray,
        k: int = 10, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """The first k database indices for one query by `metric`, without sorting the whole database."""
    return tops(metric, q_float, q_code, db_floats, db_codes, k, candidates)[0]


def tops(metric: str, q_floats: np.ndarray, q_codes: np.ndarray, db_floats: np.ndarray, db_codes: np.ndarray,
         k: int = 10, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """`top` for a batch of queries: one row of the first k database indices per query, as `rank` orders them
    (a tie across the k-th place kept in database order)."""
    keys = sort_keys(metric, q_floats, q_codes, db_floats, db_codes, candidates)
    if k >= keys.shape[1]:
        return np.argsort(keys, axis=1, kind="stable")
    out = []
    for key, part in zip(keys, np.argpartition(keys, k - 1, axis=1)[:, :k], strict=True):
        within = np.flatnonzero(key <= key[part].max())  # every point that ties with the k-th, not some of them
        out.append(within[np.lexsort((within, key[within]))][:k])
    return np.stack(out)
