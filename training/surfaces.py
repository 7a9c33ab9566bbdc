"""Training views of a collection's object lying on a real surface: the object cut out of its image (its strength
over the collection's background), drawn in a colour of its own, sometimes patterned, and darker where it stands out
more (a grey collection's objects: its pictures, light on dark or dark on light, are photos or scans whose objects
are darker than their paper or studio backdrop where they show most), or in its own colours; turned a few degrees,
at 40–60 % of a 4:3 frame, off-centre, on a generated surface (value noise like sand or carpet, wood grain, a woven
cloth, tiles, or a plain one), with light stronger on one side (or, in a quarter of them, a lamp's: brightest at a
point in the frame) and a soft shadow. Training prepares these views as
it prepares every picture (training.prepare.model_input), so the model learns what preparation makes of a photo on
a table, a bed or a floor.

The benchmark's scenes (bench/surfaces.py) are generated apart from these, with surfaces training never sees.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from training.prepare import ImageProfile, strength_over

FRAME = (160, 120)  # the view's size: preparation finds the object on pictures this large (training.separate)
LAMP_SHARE = 0.25  # views lit by a lamp (brightest inside the frame); the rest stronger on one side


def _noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    grid = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    big = np.asarray(Image.fromarray(grid).resize(((w // cell + 2) * cell, (h // cell + 2) * cell),
                                                  Image.Resampling.BILINEAR))
    return big[:h, :w]


def _sand(rng, h, w):
    n = sum(_noise(rng, h, w, c) * a for c, a in ((1, 0.5), (3, 0.3), (12, 0.4)))
    return n[..., None] * rng.uniform(20, 70)


def _wood(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = xx if rng.random() < 0.5 else yy
    warp = _noise(rng, h, w, int(rng.integers(10, 30))) * rng.uniform(4, 12)
    rings = np.sin((along + warp) * rng.uniform(0.3, 0.9)) * 0.5 + 0.5
    return rings[..., None] * rng.uniform(20, 60) * np.array([1.0, 0.8, 0.6])


def _weave(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    p = rng.uniform(2, 5)
    threads = np.sin(xx * np.pi / p) * np.sin(yy * np.pi / p)
    return (threads[..., None] * rng.uniform(10, 35)) + rng.normal(0, 4, (h, w, 1))


def _tiles(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    size = int(rng.integers(18, 45))
    grout = ((yy % size) < 2) | ((xx % size) < 2)
    shade = rng.uniform(-15, 15, (h // size + 1, w // size + 1))[yy // size, xx // size]
    return (shade - grout * rng.uniform(30, 80))[..., None] + np.zeros(3)


def _plain(rng, h, w):
    return rng.normal(0, 2, (h, w, 1)) + np.zeros(3)


TEXTURES = (_sand, _wood, _weave, _tiles, _plain)


def _surface(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(40, 235) + rng.uniform(-25, 25, 3)
    tex = TEXTURES[int(rng.integers(len(TEXTURES)))](rng, h, w)
    return (base + tex - tex.mean()).astype(np.float32)


def _object(image: Image.Image, profile: ImageProfile, rng: np.random.Generator, side: int):
    """The image's object at `side` px, turned: its RGB and alpha (0-1), from its strength over the background."""
    a = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    y = strength_over(a, np.asarray(profile.background, np.float32), profile.polarity).max(-1)
    if profile.colour:
        rgb = a
    else:  # a grey collection: the object as a camera sees it, in a colour of its own, sometimes patterned
        rgb = rng.uniform(15, 240, 3) * (1 - rng.uniform(0.3, 0.6) * y[..., None])
        if rng.random() < 0.4:
            yy, xx = np.mgrid[0:side, 0:side]
            period = rng.uniform(3, 10)
            on = np.sin((yy if rng.random() < 0.5 else yy + xx) * 2 * np.pi / period) > 0
            rgb = np.where(on[..., None], rgb, rgb * 0.4 + rng.uniform(0, 255, 3) * 0.6)
    alpha = np.clip((y - 0.04) / 0.12, 0, 1)
    rgba = Image.fromarray(np.dstack([rgb, alpha * 255]).clip(0, 255).astype(np.uint8), "RGBA")
    turned = np.asarray(rgba.rotate(float(rng.uniform(-8, 8)), Image.Resampling.BILINEAR, expand=True), np.float32)
    return turned[..., :3], turned[..., 3] / 255


def surface_view(image: Image.Image, profile: ImageProfile, rng: np.random.Generator) -> Image.Image:
    """The collection image's object lying on a generated surface, as a person might photograph it."""
    w, h = FRAME
    frame = _surface(rng, h, w)
    rgb, alpha = _object(image, profile, rng, int(h * rng.uniform(0.4, 0.6)))
    oh, ow = alpha.shape
    top, left = int(rng.integers(0, max(1, h - oh) + 1)), int(rng.integers(0, max(1, w - ow) + 1))
    oh, ow = min(oh, h - top), min(ow, w - left)
    rgb, alpha = rgb[:oh, :ow], alpha[:oh, :ow]
    if rng.random() < 0.7:  # a soft shadow beside the object
        shadow = np.zeros((h, w), np.float32)
        dy, dx = (rng.integers(1, 5, 2) * rng.choice([-1, 1], 2)).tolist()
        sy, sx = min(max(top + dy, 0), h - oh), min(max(left + dx, 0), w - ow)
        shadow[sy : sy + oh, sx : sx + ow] = alpha
        blurred = Image.fromarray((shadow * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
        frame *= 1 - rng.uniform(0.15, 0.45) * np.asarray(blurred, np.float32)[..., None] / 255
    region = frame[top : top + oh, left : left + ow]
    frame[top : top + oh, left : left + ow] = rgb * alpha[..., None] + region * (1 - alpha[..., None])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < LAMP_SHARE:  # a lamp: brightest at a point in the frame, dimmer all round it
        cy, cx, spread = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.6) * w
        near = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * spread**2))
        frame *= (1 - rng.uniform(0.3, 0.7) * (1 - near))[..., None]
    else:  # light stronger on one side
        t = rng.uniform(0, 2 * np.pi)
        ramp = ((xx - w / 2) * np.cos(t) + (yy - h / 2) * np.sin(t)) / (w / 2)
        frame *= (1 + rng.uniform(0, 0.35) * ramp)[..., None]
    return Image.fromarray(frame.clip(0, 255).astype(np.uint8))
