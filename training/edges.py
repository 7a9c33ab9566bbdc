"""Another surface beyond an edge: the floor beyond a table's edge (or on both sides of its corner), a wall behind
it, along part of a picture's border. `training.separate` learns the surface an object lies on from the border;
this finds the part of the border (and of the picture) that shows another one, to be left out of both the surface
and the object."""

from __future__ import annotations

import numpy as np

Z_OBJECT = 5.0  # robust z-scores over a surface's colour above this are unlike the surface
SPREAD_FLOOR = 3.0  # a surface's colour spreads at least this much (0-255) a channel: sensor noise is no texture
# Another surface beyond an edge (`beyond_an_edge`): the border is split where its colour jumps most (the means of
# EDGE_LAG px either side), at two places at least EDGE_ARC of the way round apart; the two arcs are two surfaces when
# they differ, and jump at both ends, by more than EDGE_STEP times their grain, and the picture changes from like the
# shorter to unlike it along EDGE_SHARE of the edge between them. The smaller part is left out of the object, and of
# what the surface is learnt from when at least REST_OF_BORDER of the border is left.
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
    """[h, w] bool: another surface that part of the border shows, beyond a straight edge or a table's corner (the
    floor beyond a table's edge, a wall behind it); none found, all False. Walked round the frame, the border's
    colour (`colour`: smoothed over its grain) is split where it changes most abruptly (`_arcs`). When the two arcs
    differ by more than EDGE_STEP times either's grain, as abruptly at the shorter's ends, the edge between them is
    looked for: the straight line between those ends, else two lines that meet inside the frame (`_inner_corner`);
    it is an edge when along EDGE_SHARE of each line the picture changes from like the shorter arc (a robust z-score
    up to Z_OBJECT; for a corner's two lines, nearer its colour than the longer arc's) on its side to unlike it on
    the other (an object the frame cuts off goes on past such a line).
    The other surface is the smaller part: the pixels there that look like its arc. Pictures smaller than
    EDGE_MIN_SIDE have none."""
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
    z_a, z_b = (robust_z(colour, *centre_and_spread(part)) for part in (a, b))
    like, nearer = z_a < Z_OBJECT, z_a < z_b
    reach = 2 * grain_of(colour)
    arc = ring[(i + np.arange(m)) % n]
    for corner in _corners(nearer, ring, i, m):
        outline = arc if corner is None else np.concatenate([arc, corner[None].round().astype(int)])
        side = _polygon(outline, h, w)  # the arc's side of the edge
        ends = [arc[0], arc[-1]] if corner is None else [arc[0], corner, arc[-1]]
        test = like if corner is None else nearer  # a corner's lines, fitted over the nearer pixels, tested so
        if all(_changes(test, side, e, f, reach) for e, f in zip(ends[:-1], ends[1:], strict=True)):
            if side.sum() <= (~side).sum():
                return like & side
            return (z_b < Z_OBJECT) & ~side
    return none


def centre_and_spread(seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median of the colours `seen` ([k, 3]) and their robust spread, at least SPREAD_FLOOR a channel."""
    return np.median(seen, 0), np.maximum(mad(seen), SPREAD_FLOOR)


def robust_z(colour: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """[h, w] each pixel's robust z-score over a surface's colour (`centre_and_spread`): its channel most unlike it."""
    return (np.abs(colour - centre) / spread).max(-1)


def _corners(nearer: np.ndarray, ring: np.ndarray, i: int, m: int):
    """The edges tried, in turn: one straight edge between the arc's ends (None); then a table's corner, two edges
    meeting inside the frame (`_inner_corner`, over the pixels `nearer` the arc's surface than the rest's)."""
    yield None
    corner = _inner_corner(nearer, ring, i, m)
    if corner is not None:
        yield corner


def _polygon(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """[h, w] bool: the polygon whose corners are `points` ([k, 2] rows and columns), filled."""
    import cv2

    filled = np.zeros((h, w), np.uint8)
    cv2.fillPoly(filled, [np.ascontiguousarray(points[:, ::-1], np.int32)], 1)
    return filled.astype(bool)


def _changes(like: np.ndarray, side: np.ndarray, p: np.ndarray, q: np.ndarray, reach: float) -> bool:
    """Whether along EDGE_SHARE of the line p-q the picture is like the surface (`like`) `reach` px to one side of it,
    within `side`, and unlike it as far to the other."""
    h, w = like.shape
    normal = np.array([p[1] - q[1], q[0] - p[0]], np.float32)
    normal /= max(float(np.linalg.norm(normal)), 1e-6)
    along = p + np.linspace(0.1, 0.9, 41)[:, None] * (np.asarray(q, np.float32) - p)
    a, b = (np.clip(np.round(along + k * reach * normal).astype(int), 0, [h - 1, w - 1]) for k in (1, -1))
    inside = side[a[:, 0], a[:, 1]] & ~side[b[:, 0], b[:, 1]]
    outside = ~side[a[:, 0], a[:, 1]] & side[b[:, 0], b[:, 1]]
    a, b = np.where(inside[:, None], a, b), np.where(inside[:, None], b, a)  # a: the side's, b: the other's
    return float(((inside | outside) & like[a[:, 0], a[:, 1]] & ~like[b[:, 0], b[:, 1]]).mean()) >= EDGE_SHARE


def _inner_corner(nearer: np.ndarray, ring: np.ndarray, i: int, m: int) -> np.ndarray | None:
    """Where the two edges of a surface that lies along two sides of the frame meet (the arc from ring position `i`,
    `m` long, mostly along two sides of the frame that meet): each edge a line fitted to how deep the surface
    reaches in from its side (marched inwards over the pixels `nearer` its colour than the other surface's), the two
    intersected; None unless they meet inside the frame."""
    h, w = nearer.shape
    arc = ring[(i + np.arange(m)) % len(ring)]
    on_side = np.stack([arc[:, 0] == 0, arc[:, 1] == w - 1, arc[:, 0] == h - 1, arc[:, 1] == 0], 1)
    sides = sorted(np.argsort(on_side.sum(0))[-2:].tolist())
    if sides[1] - sides[0] not in (1, 3):  # two sides that meet at a corner
        return None
    lines = []
    for side in sides:
        inward = np.array([(1, 0), (0, -1), (-1, 0), (0, 1)][side])
        points = arc[on_side[:, side]]
        points = points[len(points) // 10 : len(points) - len(points) // 10]
        if len(points) < 10:
            return None
        steps = np.arange(h if inward[0] else w)
        path = np.clip(points[:, None, :] + steps[None, :, None] * inward, 0, [h - 1, w - 1])
        run = nearer[path[..., 0], path[..., 1]]
        depth = np.where(run.all(1), len(steps), np.argmin(run, 1)).astype(np.float32)
        keep = np.abs(depth - np.median(depth)) <= 3 * max(float(mad(depth)), 1.0)
        if keep.sum() < 5:
            return None
        inner = points[keep] + depth[keep, None] * inward  # where the surface ends, along this side
        centre, spread = inner.mean(0), inner - inner.mean(0)
        direction = np.linalg.svd(spread, full_matrices=False)[2][0]
        lines.append((centre, direction))
    (c1, d1), (c2, d2) = lines
    matrix = np.stack([d1, -d2], 1)
    if abs(np.linalg.det(matrix)) < 1e-3:
        return None
    t = np.linalg.solve(matrix, c2 - c1)
    corner = c1 + t[0] * d1
    return corner.astype(np.float32) if 0 <= corner[0] < h and 0 <= corner[1] < w else None


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
