"""How an object found on a real surface is shaded as the collection's objects are (training.prepare): its strength
smoothed within its mask, in a grey collection taken from its own darkness, and matched to the collection's levels."""

from __future__ import annotations

import numpy as np

# The percentiles of an object's strength that a profile's `levels` records, and that an object found on a surface
# is matched to (`_shaded`).
LEVEL_PERCENTILES = (2, 10, 25, 50, 75, 90, 98)
# On a surface the object's strength is smoothed over this share of its box's longer side before it is shaded (half a
# pixel of a 28-px picture): a stripe or check finer than that is averaged as a small picture averages it, and takes
# none of the collection's levels away from the garment's own shading.
SHADE_SMOOTHING = 0.5 / 28
# A grey collection's pictures are photos or scans of objects darker than their paper or backdrop where they show
# most (a garment's folds and prints, a digit's ink), whichever way they are drawn. On a surface such an object is
# shaded by its own darkness (DARKEST), not by its difference from the surface, which turns over when the object is
# lighter than the surface (a white shirt on a dark table); training.surfaces draws its views so. LIGHTEST takes
# its light and dark the other way round (a picture lit or drawn so): a query is searched with whichever of the two
# finds a nearer stored image (indexer.query).
DARKEST, LIGHTEST = "darkest", "lightest"
SHADINGS = (DARKEST, LIGHTEST)  # every way a grey object on a surface is read (training.prepare.readings)


def surface_shaded(y: np.ndarray, x: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                   levels: tuple[float, ...], colour: bool, shading: str = DARKEST) -> np.ndarray:
    """The strength [h, w, 3] of an object found on a surface (`mask`, its `box`), shaded as the collection's objects
    are: in a colour collection its strength over the surface `y` (its channels keep their proportions: its hues), in
    a grey one its own darkness or lightness (`shading`) in the picture `x` (0-255, its light evened); smoothed
    (`_smoothed`) and matched to the collection's `levels` (`_shaded`). 0 outside the mask."""
    if not colour:
        y = 1 - x / 255 if shading == DARKEST else x / 255
    y = _smoothed(y.clip(0, 1), mask, box)
    own = y.max(-1)
    return y * (_shaded(own, mask, levels) / np.maximum(own, 1e-6))[..., None]


def _smoothed(y: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The object's strength `y` [h, w, 3] smoothed within `mask` over SHADE_SMOOTHING of its box's longer side
    (normalised by the mask's own share, so the surface does not bleed in); 0 outside the mask."""
    from scipy import ndimage

    left, top, right, bottom = box
    sigma = SHADE_SMOOTHING * max(right - left, bottom - top)
    m = mask.astype(np.float32)
    inside = np.maximum(ndimage.gaussian_filter(m, sigma), 1e-3)[..., None]
    return np.where(mask[..., None], ndimage.gaussian_filter(y * m[..., None], (sigma, sigma, 0)) / inside, 0.0)


def _shaded(y: np.ndarray, mask: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """An object found on a surface (`mask`) with its strength `y` [h, w] matched to the collection's `levels`: its
    pixels keep their order (a fold stays darker than the cloth around it) and take the collection's spread of
    strength, where its own may be a narrow band (a mid-grey garment on a light table: all about equally far from the
    table) or cut off by the floor of what stands out. Outside the mask: 0, the background."""
    own = np.percentile(y[mask], LEVEL_PERCENTILES) + np.arange(len(LEVEL_PERCENTILES)) * 1e-6  # rising
    return np.where(mask, np.interp(y, own, levels), 0.0)
