"""Where a picture's object is: the background's colour, the object's pixels and box, its polarity (`analyse`). On a
flat border (one even colour) the background is the border's median colour and the object every pixel unlike it; on a
real surface (texture, uneven light, a shadow) `training.separate` finds the object. `training.prepare` draws it as
the collection's images are drawn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from training.images import border_colour, to_rgb
from training.separate import MASK_SIDE, flat_border, object_mask, settled_rim, surface_of

# A picture is analysed at most this large (its longer side); a phone photo loses nothing the model can see.
ANALYSIS_SIDE = 512
MIN_CONTRAST = 24  # least difference from the background (0-255, after a 3×3 median) that counts as object
LIGHT_ON_DARK, DARK_ON_LIGHT = "light-on-dark", "dark-on-light"
# A picture smaller than this (its shorter side, px) is too small to tell a surface's texture from its noise: its
# background is taken to be flat (a thumbnail, a collection's own small images).
MIN_SURFACE_SIDE = 64
# Noise (a dim photo's grain, a scanner's speckle) on a flat background is measured where the picture is plainly
# background: NOISE_CLEARANCE px or more from anything that stands out, when that is at least NOISE_AREA of it.
# Above NOISE_FLOOR (0-255) the picture is smoothed with its edges kept (a bilateral filter over NOISE_SPAN px, its
# range NOISE_RANGE × the noise) and analysed again: the collection's images carry no such noise.
NOISE_CLEARANCE, NOISE_AREA, NOISE_FLOOR = 3, 0.03, 3.0
NOISE_RANGE, NOISE_SPAN = 8.0, 1.5


@dataclass
class Analysis:
    background: np.ndarray  # RGB
    box: tuple[int, int, int, int] | None  # left, top, right, bottom (exclusive) of the object; None: none found
    polarity: str
    mask: np.ndarray | None = None  # [h, w] bool: the object's pixels
    light: np.ndarray | None = None  # [h, w] the surface's light field (relative; None: even light, a flat border)


def luma(a: np.ndarray) -> np.ndarray:
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def analyse(a: np.ndarray) -> Analysis:
    """Background colour, the object's box and pixels, its polarity. On a flat border (one even colour,
    `training.separate.flat_border`) the background is the border's median colour and the object every pixel unlike
    it; on a real surface (texture, uneven light, a shadow) `training.separate` finds the object."""
    if min(a.shape[:2]) < MIN_SURFACE_SIDE:
        return _analyse_flat(a)
    small = _shrunk(a, MASK_SIDE)
    surface = surface_of(small)
    if flat_border(surface):
        return _analyse_flat(a)
    mask = object_mask(small, surface)
    h, w = a.shape[:2]
    light = _enlarged(surface.light, w, h)
    bg = surface.colour.astype(np.float32)
    if mask is None:
        return Analysis(bg, None, LIGHT_ON_DARK if luma(bg) < 128 else DARK_ON_LIGHT, light=light)
    mask = _enlarged(mask.astype(np.float32), w, h) > 0.5
    even = a / light[..., None]
    return _with_box(even, bg, settled_rim(even, mask, max(h, w) / max(small.shape[:2])), light)


def _shrunk(a: np.ndarray, side: int) -> np.ndarray:
    """`a` as float32, its longer side at most `side`."""
    h, w = a.shape[:2]
    if max(h, w) <= side:
        return a.astype(np.float32)
    scale = side / max(h, w)
    small = Image.fromarray(a).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


def _enlarged(m: np.ndarray, w: int, h: int) -> np.ndarray:
    if m.shape == (h, w):
        return m.astype(np.float32)
    return np.asarray(Image.fromarray(m.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))


def _with_box(a: np.ndarray, bg: np.ndarray, mask: np.ndarray, light: np.ndarray | None = None) -> Analysis:
    if not mask.any():
        return Analysis(bg, None, LIGHT_ON_DARK if luma(bg) < 128 else DARK_ON_LIGHT, light=light)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    polarity = LIGHT_ON_DARK if luma(a[mask].astype(np.float32)).mean() >= luma(bg) else DARK_ON_LIGHT
    return Analysis(bg, box, polarity, mask, light)


def _analyse_flat(a: np.ndarray) -> Analysis:
    bg = border_colour(a)
    _, diff = _standing_out(a, bg)
    mask = diff > max(MIN_CONTRAST, 0.1 * float(np.percentile(diff, 99)))
    return _with_box(a, bg, mask)


def _standing_out(a: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's difference from the background colour `bg` (its channel most unlike it, 0-255, uint8): as it is,
    and after a 3×3 median (the border repeated), which takes isolated noise away: that is not object."""
    import cv2

    diff = np.abs(a.astype(np.int16) - bg.astype(np.int16)).max(-1).clip(0, 255).astype(np.uint8)
    return diff, cv2.medianBlur(diff, 3)


def noise_level(a: np.ndarray, bg: np.ndarray) -> float:
    """A flat-background picture's pixel noise (0-255): the 75th percentile of its difference from the background
    colour `bg` less that difference's 3×3 median (what is left is noise: not a smooth fringe, nor, that far up, the few
    pixels of a thin strap the median erased), where the picture is plainly background (see NOISE_CLEARANCE); 0 when
    too little of it is."""
    import cv2

    diff, smooth = _standing_out(a, bg)
    near = 2 * NOISE_CLEARANCE - 1  # within NOISE_CLEARANCE − 1 px of a pixel that stands out
    clear = cv2.dilate((smooth >= MIN_CONTRAST).astype(np.uint8), np.ones((near, near), np.uint8)) == 0
    if clear.mean() < NOISE_AREA:
        return 0.0
    return float(np.percentile(np.abs(diff[clear].astype(np.float32) - smooth[clear]), 75))


def quietened(a: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, float]:
    """A noisy picture on the flat background `bg` (`noise_level` above NOISE_FLOOR) smoothed with its edges kept,
    and the noise measured; any other picture as it is, and 0."""
    noise = noise_level(a, bg)
    if noise <= NOISE_FLOOR:
        return a, 0.0
    import cv2

    return cv2.bilateralFilter(np.ascontiguousarray(a), 5, NOISE_RANGE * noise, NOISE_SPAN), noise


def analysis_array(image: Image.Image) -> np.ndarray:
    image = to_rgb(image)
    if max(image.size) > ANALYSIS_SIDE:
        image = image.copy()
        image.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image)
