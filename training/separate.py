"""Finding the object on a real surface: texture, light stronger on one side, a soft shadow.

The surface is what the picture's border shows (where part of it shows another surface beyond an edge, a floor
beyond a table's edge or corner, the rest: `training.edges`). Its light is modelled as a smooth field (a plane
fitted to the border's log-brightness, robustly; or a lamp's, brightest inside the frame, followed inwards over the
surface's colour) and divided out; what is left is described per pixel by its colour, smoothed over the surface's
grain, and its local texture energy. A pixel belongs to the object when it is unlike the border on these (a robust
z-score over the border's median and spread) or its colour hardly occurs round the border at all (a surface of
several colours, boards or tiles, has no one median), and is not a shadow (the surface's own colour and grain, only
darker). The largest region, its holes filled, is the object's first guess; a graph cut over colour (OpenCV's
grabCut) settles its edge, and specks apart from the object are dropped again. Found on a smaller picture and
enlarged, the edge is settled once more at the picture's own size (`settled_rim`): a pixel there is a blend of
object and surface, and object when it is more object than surface. `flat_border` tells the case preparation has
always handled (one even colour round the border) from this one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from training.edges import (
    REST_OF_BORDER,
    SPREAD_FLOOR,
    Z_OBJECT,
    beyond_an_edge,
    centre_and_spread,
    grain_of,
    mad,
    robust_z,
)

MASK_SIDE = 160  # the mask is found on the picture at most this large (its longer side)
BAND = 0.04  # the border band the surface is learnt from, as a share of the shorter side
RARE_BINS = 16  # the border's colour histogram: bins a channel
RARE_SUPPORT = 1.0  # a colour with less than this (a count, spread over a bin round it) round the border is rare
SHADOW_DARKER = (0.4, 0.97)  # a shadow keeps the surface's colour at this share of its brightness
SHADOW_CHROMA = 0.04  # … and its chromaticity (colour / brightness) within this of the surface's
FLAT_SPREAD = 8.0  # a border whose colour spreads less than this (0-255, robust, smoothed) in even light …
REGION_SHARE = 0.3  # regions at least this share of the largest are object too; smaller ones are specks
CUT_BAND, CUT_ITERATIONS = 6, 3  # the graph cut decides a band this many px wide round the mask (at MASK_SIDE)
CUT_KERNEL = np.ones((3, 3), np.uint8)
FLAT_LIGHT = 0.08  # … and whose light varies less than this share over the frame is flat
RIM_WIDTH = 2  # the band `settled_rim` decides: this many px of the mask's size either side of its edge, at least
# A lamp's light (`_lamp_field`): fitted to the pixels within about LAMP_SCALE (log-brightness) of it, LAMP_ROUNDS
# times, over those whose chromaticity is within LAMP_CHROMA of the border's; taken when its log-brightness curves
# down every way, its second derivatives' largest eigenvalue under LAMP_CURVE (the frame's width and height as 1).
LAMP_SCALE, LAMP_ROUNDS, LAMP_CHROMA, LAMP_CURVE = 0.05, 10, 0.04, -0.3
TUKEY_C = 4.685  # Tukey's biweight gives no weight beyond this many scales (its usual constant)
RIM_KERNEL = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)  # a pixel's four neighbours: the band's steps


@dataclass
class Surface:
    light: np.ndarray  # [h, w] the surface's brightness field, relative to its median (1 = median)
    colour: np.ndarray  # [3] the surface's median RGB under even light
    spread: float  # the border's robust colour spread after its light is evened
    light_range: float  # how much the light varies over the frame (max/min − 1)
    beyond: np.ndarray  # [h, w] bool: another surface the border shows, beyond an edge (`training.edges`)


def _band(h: int, w: int) -> np.ndarray:
    b = max(2, round(BAND * min(h, w)))
    m = np.zeros((h, w), bool)
    m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
    return m


def surface_of(a: np.ndarray) -> Surface:
    """The surface a picture ([h, w, 3] float RGB) shows round its border; where part of the border shows another
    surface beyond an edge (a floor beyond a table's edge), the one the rest of it shows."""
    h, w = a.shape[:2]
    band = _band(h, w)
    beyond = beyond_an_edge(ndimage.gaussian_filter(a, (grain_of(a), grain_of(a), 0)))
    if (band & ~beyond).sum() < REST_OF_BORDER * band.sum():  # too little of the border left to learn the surface
        beyond = np.zeros_like(band)
    band = band & ~beyond
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w - 0.5, yy / h - 0.5
    basis = np.stack([np.ones_like(u), u, v], -1)
    log_l = np.log(a.mean(-1) + 8)
    rows, target = basis[band], log_l[band]
    resid = target - np.median(target)
    for _ in range(3):  # least squares on the border without its outliers (an object touching it), refined
        keep = np.abs(resid - np.median(resid)) < 3 * max(float(mad(resid)), 0.02)
        coef, *_ = np.linalg.lstsq(rows[keep], target[keep], rcond=None)
        resid = target - rows @ coef
    field = basis @ coef
    plane = _lit(a, field, band, beyond)
    if flat_border(plane):
        return plane
    lamp = _lamp_field(a, band, u, v, log_l, field)
    return plane if lamp is None else _lit(a, lamp, band, beyond)


def _lit(a: np.ndarray, field: np.ndarray, band: np.ndarray, beyond: np.ndarray) -> Surface:
    """The surface under the light `field` (log-brightness [h, w])."""
    light = np.exp(field - np.median(field[band]))
    even = a / light[..., None]
    # The spread of the border's colour, pixel by pixel and (sensor noise alone is no surface) smoothed; the smaller
    # (smoothing smears an object that touches the border into it).
    spread = min(float(np.max(mad(even[band]))),
                 float(np.max(mad(ndimage.gaussian_filter(even, (1.5, 1.5, 0))[band]))))
    seen = light[band]
    return Surface(light, np.median(even[band], axis=0), spread, float(seen.max() / max(seen.min(), 1e-3) - 1), beyond)


def _lamp_field(a: np.ndarray, band: np.ndarray, u: np.ndarray, v: np.ndarray, log_l: np.ndarray,
                plane: np.ndarray) -> np.ndarray | None:
    """The light of a lamp, or a lens's vignette: brightest inside the frame and falling off every way, which the
    plane fitted to the border cannot follow (its bright middle would stand out as the object). A quadratic in
    log-brightness fitted over every pixel of the surface's chromaticity (within LAMP_CHROMA of the border's, or
    four of its spreads), starting from the plane and keeping, round after round, the pixels near the fit (Tukey's
    biweight): the light is followed inwards from the border, an object's pixels stay out. None unless the fit
    curves down every way (a peak: a dip would be a dark object taken for light)."""
    smooth = ndimage.gaussian_filter(a, (1.5, 1.5, 0))
    chroma = smooth / np.maximum(smooth.mean(-1, keepdims=True), 1)
    tol = max(4 * float(mad(chroma[band]).max()), LAMP_CHROMA)
    surface = (np.abs(chroma - np.median(chroma[band], 0)).max(-1) < tol)[::2, ::2].ravel()  # every other pixel
    terms = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], -1)
    rows, target, fit = terms[::2, ::2].reshape(-1, 6), log_l[::2, ::2].ravel(), plane[::2, ::2].ravel()
    for _ in range(LAMP_ROUNDS):
        r = (target - fit) / (TUKEY_C * LAMP_SCALE)
        weight = np.where(np.abs(r) < 1, (1 - r * r) ** 2, 0.0) * surface
        if weight.sum() < 10 * rows.shape[1]:
            return None
        root = np.sqrt(weight)
        coef, *_ = np.linalg.lstsq(rows * root[:, None], target * root, rcond=None)
        fit = rows @ coef
    hessian = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    return terms @ coef if np.linalg.eigvalsh(hessian).max() < LAMP_CURVE else None


def flat_border(s: Surface) -> bool:
    """One even colour round the border, in even light: the background is that colour."""
    return s.spread < FLAT_SPREAD and s.light_range < FLAT_LIGHT and not s.beyond.any()


def _features(even: np.ndarray, grain: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour smoothed over the grain ([h, w, 3]) and local texture energy ([h, w])."""
    colour = ndimage.gaussian_filter(even, (grain, grain, 0))
    luma = even.mean(-1)
    mean = ndimage.uniform_filter(luma, 5)
    energy = np.sqrt(np.maximum(ndimage.uniform_filter(luma * luma, 5) - mean * mean, 0))
    return colour, ndimage.gaussian_filter(energy, grain)


def object_mask(a: np.ndarray, s: Surface) -> np.ndarray | None:
    """[h, w] bool: the object's pixels in `a` ([h, w, 3] float RGB) on surface `s`; None when nothing stands out.
    Another surface the border shows beyond an edge is not object."""
    grain = grain_of(a)
    even = a / s.light[..., None]
    colour, energy = _features(even, grain)
    opening = max(1, round(1.5 * grain))
    beyond = ndimage.binary_dilation(s.beyond, iterations=max(1, round(grain))) if s.beyond.any() else s.beyond
    candidate = _unlike(colour, energy, _band(*a.shape[:2]) & ~s.beyond) & ~beyond  # the border it was learnt from
    candidate = ndimage.binary_opening(candidate, iterations=opening)
    if not candidate.any():
        return None
    keep = ndimage.binary_closing(_largest_regions(candidate), iterations=max(1, round(grain)))
    # Smoothing spread the object's colour over the surface round it: that rim is taken off again.
    mask = ndimage.binary_erosion(ndimage.binary_fill_holes(keep), iterations=max(1, round(2 * grain)))
    return _graph_cut(even, mask) if mask.any() else None


def _unlike(colour: np.ndarray, energy: np.ndarray, band: np.ndarray) -> np.ndarray:
    """[h, w] bool: the pixels unlike the surface that `band` shows (by colour or texture energy: a robust z-score
    over the band's median and spread; or a colour rare in it), and not its shadow (the surface's own colour and
    grain, only darker)."""
    c_med, c_mad = centre_and_spread(colour[band])
    e_med, e_mad = np.median(energy[band]), max(float(mad(energy[band])), SPREAD_FLOOR / 2)
    z_colour = robust_z(colour, c_med, c_mad)
    z_energy = np.abs(energy - e_med) / e_mad
    # A shadow: the surface's chromaticity, darker by a share in SHADOW_DARKER, its grain dimmed alike.
    luma, ref = colour.mean(-1), max(float(c_med.mean()), 1.0)
    ratio = luma / ref
    chroma = colour / np.maximum(luma, 1)[..., None] - c_med / ref
    chroma_off = np.abs(chroma).max(-1)
    shadow = (ratio > SHADOW_DARKER[0]) & (ratio < SHADOW_DARKER[1]) \
        & (chroma_off < min(Z_OBJECT * float(c_mad.max()) / ref, SHADOW_CHROMA)) \
        & (np.abs(energy - e_med * ratio) < Z_OBJECT * e_mad)
    return ((z_colour > Z_OBJECT) | (z_energy > Z_OBJECT) | _rare_colour(colour, band)) & ~shadow


def settled_rim(even: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    """The edge of `mask` ([h, w] bool, found on the picture `scale` times smaller and enlarged) settled pixel by
    pixel on `even` (the picture, its light evened): within a band round the edge (RIM_WIDTH px, or `scale` px if
    more), a pixel is object when its colour is nearer the object's colour nearby than the surface's nearby, that is
    more object than surface, as a blend of the two is; the enlarged mask, smoothed, runs over the surface by a
    pixel or two. The object's colour nearby is the mean of the mask's pixels just inside the band, the surface's
    the mean of the pixels just outside it, each weighted by a Gaussian as wide as the band."""
    import cv2

    width = max(RIM_WIDTH, round(scale))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return mask
    reach = 6 * width  # the band and its Gaussians' support: the work is done in the object's box this much larger
    top, left = max(rows[0] - reach, 0), max(cols[0] - reach, 0)
    part = (slice(top, rows[-1] + 1 + reach), slice(left, cols[-1] + 1 + reach))
    m, x = mask[part].astype(np.uint8), np.ascontiguousarray(even[part], np.float32)
    inner = cv2.erode(m, RIM_KERNEL, iterations=width, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    outer = ~cv2.dilate(m, RIM_KERNEL, iterations=width).astype(bool)
    if not inner.any() or not outer.any():
        return mask
    near = []
    for side in (inner, outer):
        weight = cv2.GaussianBlur(side.astype(np.float32), (0, 0), width)
        mean = cv2.GaussianBlur(x * side[..., None], (0, 0), width) / np.maximum(weight, 1e-6)[..., None]
        near.append((np.linalg.norm(x - mean, axis=-1), weight > 1e-3))
    (to_object, seen_object), (to_surface, seen_surface) = near
    band = ~inner & ~outer & seen_object & seen_surface
    settled = mask.copy()
    settled[part][band] = to_object[band] < to_surface[band]
    settled[part] = ndimage.binary_fill_holes(settled[part])  # the object and every hole it may have lie in `part`
    return settled


def _largest_regions(mask: np.ndarray) -> np.ndarray:
    """The mask's largest connected region and any nearly as large (a pair of shoes): specks apart from it dropped."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return np.isin(labels, 1 + np.flatnonzero(sizes >= REGION_SHARE * sizes.max()))


def _rare_colour(colour: np.ndarray, band: np.ndarray) -> np.ndarray:
    """[h, w] bool: pixels whose colour hardly occurs round the border. The border's colours as a histogram, each
    count spread over the bins round it: a surface of several colours (boards, tiles) is no single median colour."""
    q = np.clip((colour * (RARE_BINS / 256)).astype(np.int32), 0, RARE_BINS - 1)
    idx = (q[..., 0] * RARE_BINS + q[..., 1]) * RARE_BINS + q[..., 2]
    hist = np.bincount(idx[band], minlength=RARE_BINS**3).reshape((RARE_BINS,) * 3).astype(np.float32)
    support = ndimage.gaussian_filter(hist, 1.0).ravel()[idx]
    return support < RARE_SUPPORT


def _graph_cut(even: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask's edge settled by a graph cut over colour (OpenCV's grabCut, Rother et al. 2004): its core is object,
    far from it is surface, the band between is decided by colour models of the two and the picture's edges. The
    mask as it is when the cut cannot run (too few pixels of either)."""
    import cv2

    u8 = mask.astype(np.uint8)
    labels = np.full(mask.shape, cv2.GC_PR_BGD, np.uint8)
    labels[mask] = cv2.GC_PR_FGD
    labels[cv2.erode(u8, CUT_KERNEL, iterations=2).astype(bool)] = cv2.GC_FGD
    labels[~cv2.dilate(u8, CUT_KERNEL, iterations=CUT_BAND).astype(bool)] = cv2.GC_BGD
    if not (labels == cv2.GC_BGD).any() or not (labels == cv2.GC_FGD).any():
        return mask
    image = np.ascontiguousarray(even.clip(0, 255).astype(np.uint8))
    cv2.setRNGSeed(0)  # its colour models start from k-means on OpenCV's RNG: seeded, the same picture, the same cut
    cv2.grabCut(image, labels, None, np.zeros((1, 65)), np.zeros((1, 65)), CUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    cut = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    # The cut may take specks of the surface's own colours in its band (terrazzo's flecks): dropped, they would
    # stretch the object's box and so its frame.
    return ndimage.binary_fill_holes(_largest_regions(cut)) if cut.any() else mask
