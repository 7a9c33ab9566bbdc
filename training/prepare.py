"""A picture prepared to look like the collection's images: the collection's image profile (`profile_of`, measured
once and recorded with the model and the collection), and `prepare`: find the object against its background, crop
it, match colour, polarity and background level, and frame it as the collection frames its objects. Then
`model_input`: prepared and preprocessed, the one image path to the model."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from training.analysis import (
    DARK_ON_LIGHT,
    LIGHT_ON_DARK,
    MIN_CONTRAST,
    Analysis,
    analyse,
    analysis_array,
    luma,
    quietened,
)
from training.images import preprocess, to_rgb
from training.shading import DARKEST, LEVEL_PERCENTILES, SHADINGS, surface_shaded

log = logging.getLogger(__name__)

# On a surface, the object's pixels stand out at least this much (0-1): a garment whose colour is near the surface's
# keeps its silhouette (a collection profiled without `levels`).
SURFACE_FLOOR = 0.25
CONTRAST_PERCENTILE = 5  # fainter than all but this share of the collection's objects: stretched (ImageProfile)
# Matting (a colour collection, a picture on a flat background of another colour): a pixel this far (0-255, its
# channel most unlike the background) from the background is all object; nearer, part object, part background.
MATTE_EDGE = 96
MATTE_SHOWS = 0.05  # matted only if this share of the object's pixels would show on the collection's background


@dataclass(frozen=True)
class ImageProfile:
    """How a collection's images look: what a query is prepared to resemble. Medians over a sample."""

    background: tuple[float, float, float]  # RGB of the background
    polarity: str  # LIGHT_ON_DARK (objects brighter than the background) or DARK_ON_LIGHT
    fill: float  # the object's box over the frame, in the dimension it fills most (1: touches two sides)
    centre: tuple[float, float]  # the object box's centre, as fractions of the frame's width and height
    colour: bool  # False: grey images (a query is converted to grey)
    aspect: float  # frame width / height
    samples: int = 0
    # The object's strength over its background (its 95th percentile, 0-1) that all but CONTRAST_PERCENTILE % of
    # the collection's images reach: a fainter picture (a pale garment on white) is stretched up to it.
    contrast: float = 0.0
    # The object's strength (0-1) at LEVEL_PERCENTILES of its pixels, the median over the collection's images: how
    # its objects are shaded. An object found on a surface is shaded to match (empty: measured before it was).
    levels: tuple[float, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> ImageProfile | None:
        if not d:
            return None
        return cls(background=tuple(d["background"]), polarity=d["polarity"], fill=float(d["fill"]),
                   centre=tuple(d["centre"]), colour=bool(d["colour"]), aspect=float(d["aspect"]),
                   samples=int(d.get("samples", 0)), contrast=float(d.get("contrast", 0.0)),
                   levels=tuple(float(v) for v in d.get("levels", ())))


def _object_strength(y: np.ndarray) -> float:
    """The 95th percentile of the object's strength (`strength_over`, [h, w, 3]) over the pixels that stand out."""
    y = y.max(-1)
    obj = y[y > MIN_CONTRAST / 255]
    return float(np.percentile(obj, 95)) if obj.size else 0.0


def strength_over(x: np.ndarray, bg: np.ndarray, polarity: str) -> np.ndarray:
    """How far each value stands out from the background, towards white (LIGHT_ON_DARK) or black: 0 to 1."""
    if polarity == LIGHT_ON_DARK:
        return ((x - bg) / np.maximum(255 - bg, 1)).clip(0, 1)
    return ((bg - x) / np.maximum(bg, 1)).clip(0, 1)


def measure_profile(images) -> ImageProfile:
    """The profile of a sample of a collection's images (PIL images): medians of what `analyse` finds."""
    bgs, fills, centres, chromas, aspects, polarities, strengths, levels = [], [], [], [], [], [], [], []
    for image in images:
        a = analysis_array(image)
        h, w = a.shape[:2]
        an = analyse(a)
        bgs.append(an.background)
        aspects.append(w / h)
        if an.box is None:
            continue
        left, top, right, bottom = an.box
        fills.append(max((right - left) / w, (bottom - top) / h))
        centres.append(((left + right) / 2 / w, (top + bottom) / 2 / h))
        obj = a[an.mask].astype(np.float32)
        chromas.append(float((obj.max(-1) - obj.min(-1)).mean()))  # spread between the RGB channels
        polarities.append(an.polarity)
        y = strength_over(a.astype(np.float32), an.background, an.polarity)
        strengths.append(_object_strength(y))
        levels.append(np.percentile(y.max(-1)[an.mask], LEVEL_PERCENTILES))
    if not bgs:
        raise ValueError("cannot measure an image profile from no images")
    return ImageProfile(
        background=tuple(round(float(v), 1) for v in np.median(bgs, axis=0)),
        polarity=max((LIGHT_ON_DARK, DARK_ON_LIGHT), key=polarities.count),
        fill=round(float(np.median(fills)), 3) if fills else 1.0,
        centre=tuple(round(float(v), 3) for v in np.median(centres, axis=0)) if centres else (0.5, 0.5),
        colour=bool(np.median(chromas) > 12) if chromas else True,
        aspect=round(float(np.median(aspects)), 3),
        samples=len(bgs),
        contrast=round(float(np.percentile(strengths, CONTRAST_PERCENTILE)), 3) if strengths else 0.0,
        levels=tuple(round(float(v), 3) for v in np.maximum.accumulate(np.median(levels, axis=0))) if levels else (),
    )


PROFILE_SAMPLE = 2000  # images a profile is measured on, spread evenly over the collection


def profile_of(split, sample: int = PROFILE_SAMPLE) -> ImageProfile:
    """The profile of a dataset split (rows with an `image`) or a list of images, measured on an evenly spread
    sample: what training records in the model's config and indexing with the collection."""
    step = max(1, len(split) // sample)

    def images():
        for i in range(0, len(split), step):
            try:  # a dataset decodes on access: a damaged file is left out here (indexing reports it)
                row = split[i]
            except (OSError, SyntaxError, ValueError) as e:
                log.warning("image profile: row %d left out (%s)", i, e)
                continue
            yield row["image"] if isinstance(row, dict) else row

    return measure_profile(images())


def prepare(image: Image.Image, profile: ImageProfile | None) -> tuple[Image.Image, dict]:
    """Make a picture look like the collection's images: smooth it if it is noisy (`quietened`), find the object
    against its background, crop it, match colour, polarity and background level, and frame it as the collection
    frames its objects. In a colour collection, an object on a flat background of another colour keeps its own
    colours, moved onto the collection's background (`_matte`); otherwise it is redrawn by its strength in the
    collection's polarity (`_redrawn`). A grey collection's object found on a surface is shaded by its darkness
    (training.shading; `info["shading"]`).

    Returns the prepared RGB image and what was done (the API reports it). Without a profile: RGB only."""
    return readings(image, profile, (DARKEST,))[0]


def readings(image: Image.Image, profile: ImageProfile | None,
             shadings: tuple[str, ...] = SHADINGS) -> list[tuple[Image.Image, dict]]:
    """`prepare`'s picture and what was done, once for each of `shadings` where the shading applies (a grey
    collection's object found on a surface: training.shading), else once; the object is found once for all."""
    if profile is None:
        return [(to_rgb(image), {"prepared": False})]
    a = analysis_array(image)
    an = analyse(a)
    info: dict = {"prepared": True, "size": [a.shape[1], a.shape[0]]}
    if an.light is None:  # on a flat background noise is told from texture: smoothed away if there is any
        a, noise = quietened(a, an.background)
        if noise:
            an, info["smoothed"] = analyse(a), round(noise, 1)
    x = a.astype(np.float32) if an.light is None else a / an.light[..., None]  # light evened on a surface
    bg = an.background.astype(np.float32)
    target = np.asarray(profile.background, dtype=np.float32)
    if not profile.colour:
        x, bg = luma(x)[..., None].repeat(3, -1), np.full(3, luma(bg), np.float32)
        info["grey"] = True
    matte = _matte(x, bg, an.mask if an.box else None, target) if profile.colour and an.light is None else None
    if matte is not None:  # the object in its own colours, moved onto the collection's background
        x = x + (1 - matte[..., None]) * (target - bg)
        info["matted"] = True
    if an.box is None:  # nothing stands out from the background: the picture is framed as it is
        info["object"] = None
        return [(Image.fromarray(x.round().clip(0, 255).astype(np.uint8)), info)]
    if matte is not None:
        info["inverted"] = False
        return [_framed(x, an, profile, target, info)]
    done = []
    for shading in shadings:
        drawn = dict(info)
        done.append(_framed(_redrawn(x, bg, an, profile, target, drawn, shading), an, profile, target, drawn))
        if "shading" not in drawn:  # one way to draw it
            break
    return done


def _framed(x: np.ndarray, an: Analysis, profile: ImageProfile, target: np.ndarray,
            info: dict) -> tuple[Image.Image, dict]:
    """The object (`an.box` of `x`) in a frame of the collection's aspect, spanning `fill` of it, its centre where
    the collection's are, on the collection's background."""
    info["surface"] = an.light is not None  # found on a textured or unevenly lit surface (training.separate)
    left, top, right, bottom = an.box
    info["object"] = [left, top, right, bottom]
    obj = x[top:bottom, left:right]
    bw, bh = right - left, bottom - top
    fh = max(bw / profile.aspect, bh) / max(profile.fill, 0.05)
    fw, fh = max(bw, round(fh * profile.aspect)), max(bh, round(fh))
    ox = min(max(round(profile.centre[0] * fw - bw / 2), 0), fw - bw)
    oy = min(max(round(profile.centre[1] * fh - bh / 2), 0), fh - bh)
    frame = np.empty((fh, fw, 3), np.float32)
    frame[:] = target
    frame[oy : oy + bh, ox : ox + bw] = obj
    info["frame"] = [fw, fh]
    return Image.fromarray(frame.round().clip(0, 255).astype(np.uint8)), info


def _matte(x: np.ndarray, bg: np.ndarray, mask: np.ndarray | None, target: np.ndarray) -> np.ndarray | None:
    """How much of each pixel is object (0-1), for a colour picture on a flat background unlike the collection's, when
    its object in its own colours still shows over the collection's background (a yellow drawing on blue moved onto
    white stays yellow; a white card with red pips stays white); None when it would not (white lines on black onto
    white) or the backgrounds are alike: then the object is redrawn by its strength (`_redrawn`). `mask` None:
    nothing stood out (a faint drawing), and its background alone is moved onto the collection's."""
    if np.abs(bg - target).max() <= MIN_CONTRAST:
        return None
    if mask is not None and (np.abs(x[mask] - target).max(-1) > 2 * MIN_CONTRAST).mean() < MATTE_SHOWS:
        return None
    return (np.abs(x - bg).max(-1) / MATTE_EDGE).clip(0, 1)


def _redrawn(x: np.ndarray, bg: np.ndarray, an: Analysis, profile: ImageProfile, target: np.ndarray,
             info: dict, shading: str = DARKEST) -> np.ndarray:
    """The object drawn by its strength over its background in the picture's own polarity (0 = background,
    1 = extreme), on a surface shaded as the collection's objects are (training.shading, with the profile's `levels`),
    stretched when fainter than the collection's objects, in the collection's polarity over the collection's
    background level.

    In a grey collection, an object on a surface is shaded by its own darkness, or lightness (`shading`:
    training.shading)."""
    y = strength_over(x, bg, an.polarity)
    if an.light is not None and profile.levels:  # on a surface: the object's pixels only, shaded as the collection's
        y = surface_shaded(y, x, an.mask, an.box, profile.levels, profile.colour, shading)
        info["shaded"] = True
        if not profile.colour:
            info["shading"] = shading
    elif an.light is not None:  # none of the surface's grain
        y = np.where(an.mask[..., None], np.maximum(y, SURFACE_FLOOR), 0)
    strength = _object_strength(y)
    if 0 < strength < profile.contrast:
        y = (y * (profile.contrast / strength)).clip(0, 1)
        info["stretched"] = round(profile.contrast / strength, 2)
    info["inverted"] = an.polarity != profile.polarity
    return target + y * (255 - target) if profile.polarity == LIGHT_ON_DARK else target - y * target


def model_input(images: list[Image.Image], profile: ImageProfile | None, size: int, mean, std,
                shadings: tuple[str, ...] = (DARKEST,)) -> tuple[torch.Tensor, list[dict]]:
    """The one image path to the model: each picture prepared like the collection's (`profile`; None: as it is),
    then preprocessed; returns the tensor and what preparation did to each picture. Training, indexing and
    queries all call this. With more `shadings`, a picture they apply to gives a row for each (`readings`)."""
    done = [reading for image in images for reading in readings(image, profile, shadings)]
    return preprocess([d[0] for d in done], size, mean, std), [d[1] for d in done]
