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
"""

from __future__ import annotations

import itertools

import numpy as np

METRICS = ("cosine", "hamming", "hamming+rerank")
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


def sort_keys(metric: str, q_floats: np.ndarray, q_codes: np.ndarray, db_floats: np.ndarray,
              db_codes: np.ndarray, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """The rule as one number per (query, database point): lower ranks first; equal keys in database order.
    `candidates`: hamming+rerank's k × oversampling."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    cos = np.atleast_2d(q_floats) @ db_floats.T
    if metric == "cosine":
        return -cos
    dist = hamming(np.atleast_2d(q_codes), db_codes)
    key = dist * 4 - cos  # |cos| ≤ 1: the distance stays primary, cosine inside a tie
    if metric == "hamming":
        return key
    # hamming+rerank: -cos - 2 < -1 ≤ dist * 4 - cos, so the points within the radius come first, by cosine
    last = min(candidates, dist.shape[1]) - 1
    radius = np.partition(dist, last, axis=1)[:, last : last + 1]
    return np.where(dist <= radius, -cos - 2, key)


def rank(metric: str, q_floats: np.ndarray, q_codes: np.ndarray, db_floats: np.ndarray, db_codes: np.ndarray,
         candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """Database indices in ranked order, one row per query, by `metric` (see the module's rules)."""
    return np.argsort(sort_keys(metric, q_floats, q_codes, db_floats, db_codes, candidates), axis=1, kind="stable")


def top(metric: str, q_float: np.ndarray, q_code: np.ndarray, db_floats: np.ndarray, db_codes: np.ndarray,
        k: int = 10, candidates: int = 10 * OVERSAMPLING) -> np.ndarray:
    """The first k database indices for one query by `metric`, without sorting the whole database."""
    key = sort_keys(metric, q_float, q_code, db_floats, db_codes, candidates)[0]
    if k >= len(key):
        return np.argsort(key, kind="stable")
    first = np.argpartition(key, k - 1)[:k]
    return first[np.lexsort((first, key[first]))]
