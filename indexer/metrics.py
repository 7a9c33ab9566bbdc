"""Retrieval metrics on ranked relevance, the definitions the deep-hashing literature uses.

For one query, `rel` is the 0/1 relevance of the database in ranked order (relevant = same label).
- AP@all: mean of precision@i over the ranks i of all relevant items.
- AP@R (e.g. R=1000): Σ_{i≤R} P@i·rel_i divided by the number of relevant items within the top R
  (the convention of DSH, HashNet and most hashing papers; 0 when none is retrieved).
"""

from __future__ import annotations

import numpy as np


def average_precision(rel: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """AP of each row of `rel` ([queries, ranked database] 0/1), over the first `cutoff` ranks."""
    rel = np.asarray(rel, dtype=np.float64)
    if cutoff is not None:
        rel = rel[:, :cutoff]
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    precision_at_hits = (hits / ranks) * rel
    n_rel = rel.sum(axis=1)
    return np.divide(precision_at_hits.sum(axis=1), n_rel, out=np.zeros(len(rel)), where=n_rel > 0)


def precision_at(rel: np.ndarray, ks: list[int]) -> dict[int, float]:
    rel = np.asarray(rel, dtype=np.float64)
    return {k: float(rel[:, :k].mean()) for k in ks}


def recall_at(rel: np.ndarray, ks: list[int], n_relevant: np.ndarray) -> dict[int, float]:
    hits = np.cumsum(np.asarray(rel, dtype=np.float64), axis=1)
    return {k: float((hits[:, min(k, hits.shape[1]) - 1] / np.maximum(n_relevant, 1)).mean()) for k in ks}


def code_balance(codes: np.ndarray) -> dict:
    """Fraction of ones per bit and the mean absolute pairwise correlation between bits."""
    codes = np.asarray(codes, dtype=np.float64)
    ones = codes.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(codes, rowvar=False)
    off = corr[~np.eye(len(corr), dtype=bool)]
    return {
        "ones_min": float(ones.min()),
        "ones_max": float(ones.max()),
        "ones_per_bit": [round(float(x), 4) for x in ones],
        "mean_abs_bit_correlation": float(np.nanmean(np.abs(off))),
    }
