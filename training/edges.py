"""Another surface beyond a straight edge: the floor beyond a table's edge, a wall behind it, along part of a
picture's border. `training.separate` learns the surface an object lies on from the border; this finds the part of
the border (and of the picture) that shows another one, to be left out of both the surface and the object."""

from __future__ import annotations

import numpy as np

Z_OBJECT = 5.0  # robust z-scores over a surface's colour above this are unlike the surface
# Another surface beyond an edge (`beyond_an_edge`): the border is split where its colour jumps most (the means of
# EDGE_LAG px either side), at two places at least EDGE_ARC of the way round apart; the shorter arc is another
# surface when it differs from the rest, and jumps at both its ends, by more than EDGE_STEP times their grain, and
# the picture changes from like it to unlike it along EDGE_SHARE of the straight line between its ends. It is left
# out of the object, and of what the surface is learnt from when at least REST_OF_BORDER of the border is left.
EDGE_ARC, EDGE_LAG, EDGE_STEP, EDGE_SHARE, REST_OF_BORDER = 0.08, 4, 6.0, 0.5, 0.3
# Only in pictures at least this large (the shorter side, px, as analysed): smaller ones are thumbnails and drawings,
# which fill their frame with bands of colour (a flag, a framed icon) as often as a photo shows a floor beyond a table.
EDGE_MIN_SIDE = 100


def mad(x: np.ndarray, axis=0) -> np.ndarray:
    """The median absolute deviation, scaled to a normal distribution's standard deviation."""
    return 1.4826 * np.median(np.abs(x - np.median(x, axis=axis)), axis=axis)


def grain_of(a: np.ndarray) -> float:
    """A surface's grain is smoothed over this many px of `a` (at MASK_SIDE, about 2)."""
    return max(1.0, 0.012 * max(a.shape[:2]))


def beyond_an_edge(colour: np.ndarray) -> np.ndarray:
    """[h, w] bool: another surface that part of the border shows, beyond a straight edge (the floor beyond a table's
    edge, a wall behind it); none found, all False. Walked round the frame, the border's colour (`colour`: smoothed
    over its grain) is split where it changes most abruptly (`_arcs`); when the shorter arc differs from the longer
    by more than EDGE_STEP times either's grain, as abruptly at both its ends, and the picture changes along the
    straight line between those ends from like the shorter arc (a robust z-score up to Z_OBJECT) to unlike it for at
    least EDGE_SHARE of the line (an object the frame cuts off goes on past that line), what lies beyond the line is
    the other surface. Pictures smaller than EDGE_MIN_SIDE have none."""
    h, w = colour.shape[:2]
    if min(h, w) < EDGE_MIN_SIDE:
        return np.zeros((h, w), bool)
    ring = _ring(h, w)
    seq = colour[ring[:, 0], ring[:, 1]].astype(np.float64)
    n = len(seq)
    i, m, jump = _arcs(seq)
    other = np.zeros(n, bool)
    other[(i + np.arange(m)) % n] = True
    a, b = seq[other], seq[~other]
    least = EDGE_STEP * max(_grain_spread(a), _grain_spread(b), 3.0)
    none = np.zeros((h, w), bool)
    if np.abs(np.median(a, 0) - np.median(b, 0)).max() <= least or min(jump[i], jump[(i + m) % n]) <= least:
        return none
    p, q = ring[i].astype(np.float32), ring[(i + m) % n].astype(np.float32)
    normal = np.array([p[1] - q[1], q[0] - p[0]], np.float32)  # across the line p-q, towards the arc's middle
    normal /= max(float(np.linalg.norm(normal)), 1e-6)
    if (ring[(i + m // 2) % n] - p) @ normal < 0:
        normal = -normal
    like = (np.abs(colour - np.median(a, 0)) / np.maximum(mad(a), 3.0)).max(-1) < Z_OBJECT
    reach = 2 * grain_of(colour)
    along = p + np.linspace(0.1, 0.9, 41)[:, None] * (q - p)
    sides = [np.clip(np.round(along + k * reach * normal).astype(int), 0, [h - 1, w - 1]) for k in (1, -1)]
    changes = like[sides[0][:, 0], sides[0][:, 1]] & ~like[sides[1][:, 0], sides[1][:, 1]]
    if changes.mean() < EDGE_SHARE:
        return none
    yy, xx = np.mgrid[0:h, 0:w]
    return like & ((yy - p[0]) * normal[0] + (xx - p[1]) * normal[1] > 0)


def _arcs(seq: np.ndarray) -> tuple[int, int, np.ndarray]:
    """A closed run of colours ([n, 3], round the frame) split where it changes most abruptly (the two largest jumps
    between the means of the EDGE_LAG colours either side, at least EDGE_ARC of the way round apart): the shorter
    arc's start and length, and the jump at each position."""
    n = len(seq)
    sums = np.concatenate([np.zeros((1, 3)), np.cumsum(np.concatenate([seq, seq, seq]), 0)])
    k = np.arange(n) + n
    jump = np.abs(sums[k + EDGE_LAG] - 2 * sums[k] + sums[k - EDGE_LAG]).max(-1) / EDGE_LAG
    first = int(np.argmax(jump))
    apart = np.abs((np.arange(n) - first + n // 2) % n - n // 2) >= EDGE_ARC * n
    second = int(np.flatnonzero(apart)[np.argmax(jump[apart])])
    m = (second - first) % n
    return (first, m, jump) if m <= n // 2 else (second, n - m, jump)


def _grain_spread(seq: np.ndarray) -> float:
    """How much a run of colours along the border ([n, 3]) varies from pixel to pixel a few apart (its grain, not the
    light's slow change over the frame): the robust spread of their differences, its largest channel."""
    lag = min(EDGE_LAG, len(seq) - 1)
    return float(mad(seq[lag:] - seq[:-lag]).max()) / np.sqrt(2)


def _ring(h: int, w: int) -> np.ndarray:
    """[n, 2] the (row, column) of each pixel round the frame's edge, in order, clockwise from the top left."""
    top = [(0, x) for x in range(w)]
    right = [(y, w - 1) for y in range(1, h)]
    bottom = [(h - 1, x) for x in range(w - 2, -1, -1)]
    left = [(y, 0) for y in range(h - 2, 0, -1)]
    return np.array(top + right + bottom + left)
