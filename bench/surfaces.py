"""The bench's own scenes of a garment lying on a real surface, for bench/robustness.py: held apart from the surfaces
training generates (training/surfaces.py), so the figures say how preparation and the model meet surfaces they
have not seen.

A scene: a Fashion-MNIST garment (28 px grey on black) drawn in a colour of its own, sometimes patterned, at 40–60 %
of a 4:3 frame, turned a few degrees, off-centre, on one of the surfaces below (five generated here, photographs
of real ones: GIMP's texture tiles, and a table whose edge, or corner, is in view, the floor beyond it), with light
stronger on one side, a soft shadow, JPEG'd. Its true silhouette comes back with it (`scene`), for the tests'
framing checks. The garment is shaded brighter where Fashion-MNIST's picture is brighter, or (`photo_shaded`)
darker there, as a photo of it is: Fashion-MNIST's pictures are product photos with light and dark swapped.
"""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench.common import apt_install

W, H = 480, 360


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Noise smooth over `cell` px: a coarse random grid enlarged bicubically, in [0, 1]."""
    grid = rng.random((h // cell + 3, w // cell + 3)).astype(np.float32)
    big = Image.fromarray(grid).resize(((w // cell + 3) * cell, (h // cell + 3) * cell), Image.Resampling.BICUBIC)
    a = np.asarray(big)[cell : cell + h, cell : cell + w]
    return (a - a.min()) / max(float(np.ptp(a)), 1e-6)


def _linen(rng, h, w):
    """Linen: fine slubs along the threads, a pale even colour."""
    base = rng.uniform(200, 235) + rng.uniform(-12, 12, 3)
    threads = rng.normal(0, 1, (h, 1)) * 0.6 + rng.normal(0, 1, (1, w)) * 0.6 + rng.normal(0, 1, (h, w)) * 0.4
    return base + 9 * threads[..., None]


def _terrazzo(rng, h, w):
    """Terrazzo: flecks of other colours in a light cement."""
    a = np.empty((h, w, 3), np.float32)
    a[:] = rng.uniform(170, 215) + rng.uniform(-8, 8, 3)
    a += rng.normal(0, 6, (h, w, 1))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(120, 220))):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.uniform(2, 6)
        a[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(40, 240, 3)
    return a


def _marble(rng, h, w):
    """Marble: pale stone with dark veins winding through it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    turb = sum(_smooth_noise(rng, h, w, c) * (c / 60) for c in (60, 30, 15))
    veins = np.abs(np.sin((xx * 0.02 + yy * 0.012 + 5 * turb) * np.pi)) ** 0.25
    base = rng.uniform(215, 240) + rng.uniform(-6, 6, 3)
    return base[None, None] - (1 - veins[..., None]) * rng.uniform(60, 110)


def _plain(rng, h, w):
    """A smooth wall by a window or a plain table top: one colour (its light, across the frame or a lamp's, comes
    later, over the garment too)."""
    return np.full((h, w, 3), rng.uniform(175, 225), np.float32) + rng.uniform(-10, 10, 3) + rng.normal(0, 2, (h, w, 1))


def _lamp(rng, h, w):
    """A lamp's light over the whole scene (the garment as well as the table): brightest at a point inside the frame,
    falling off round it to between a half and a fifth at the frame's far side."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2).clip(0, 0.8 * w) / w
    return 1.05 - rng.uniform(0.5, 1.0) * r


def _table_edge(rng, h, w):
    """A table (linen, marble, terrazzo or a photographed one) whose edge crosses the frame near one of its sides,
    a little aslant: beyond it, in a twelfth to a quarter of the frame, the floor or a wall (a photographed surface,
    in the table's shadow: half to nine tenths as bright)."""
    table, floor = _table_and_floor(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    side = int(rng.integers(4))  # the side the floor shows along: top, bottom, left, right
    depth, slant = rng.uniform(1 / 12, 1 / 4), rng.uniform(-0.15, 0.15)
    across = (yy / h, 1 - yy / h, xx / w, 1 - xx / w)[side]
    along = (xx / w, xx / w, yy / h, yy / h)[side]
    return np.where((across + slant * (along - 0.5) < depth)[..., None], floor, table).astype(np.float32)


def _table_corner(rng, h, w):
    """A table's corner in view: its two edges, each a little aslant, run along two sides of the frame that meet, and
    the floor shows beyond both (each a twelfth to a quarter of the frame deep; the table and the floor as in
    `_table_edge`)."""
    table, floor = _table_and_floor(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    down, right = rng.integers(2, size=2)  # the floor along the top or the bottom, and the left or the right
    across_y, across_x = (1 - yy / h if down else yy / h), (1 - xx / w if right else xx / w)
    d1, d2 = rng.uniform(1 / 12, 1 / 4, 2)
    s1, s2 = rng.uniform(-0.1, 0.1, 2)
    beyond = (across_y + s1 * (xx / w - 0.5) < d1) | (across_x + s2 * (yy / h - 0.5) < d2)
    return np.where(beyond[..., None], floor, table).astype(np.float32)


def _table_and_floor(rng, h, w):
    table = SURFACES[("linen", "marble", "terrazzo", "photographed")[int(rng.integers(4))]](rng, h, w)
    return table, _photographed(rng, h, w) * rng.uniform(0.5, 0.9)


# Photographs of real surfaces nobody here made: GIMP's pattern tiles (Debian's gimp-data), the ones a garment could
# lie on (a table, a floor, a bed, paper); the sky, water, food and drawn patterns are left out.
GIMP_PATTERNS = Path("/usr/share/gimp/2.0/patterns")
PHOTOGRAPHED = ("Animal/leather", "Fabric/burlap", "Paper/crinklepaper", "Paper/paper", "Stone/granite1",
                "Stone/marble1", "Stone/marble2", "Stone/slate", "Stone/terra", "Stone/pink_marble", "Wood/parque1",
                "Wood/walnut", "Wood/wood1", "Wood/burlwood", "Wood/corkboard")


def read_pattern(path: Path) -> np.ndarray:
    """A GIMP pattern file (.pat: a big-endian header, then the pixels, 1 to 4 bytes each) as RGB uint8 [H, W, 3]."""
    data = path.read_bytes()
    header_size, _version, w, h, depth, magic = struct.unpack(">5I4s", data[:24])
    if magic != b"GPAT" or not 1 <= depth <= 4:
        raise ValueError(f"{path}: not a GIMP pattern")
    px = np.frombuffer(data[header_size : header_size + w * h * depth], np.uint8).reshape(h, w, depth)
    return np.repeat(px[..., :1], 3, -1) if depth < 3 else px[..., :3]


@cache
def _pattern(name: str) -> np.ndarray:
    path = GIMP_PATTERNS / f"{name}.pat"
    if not path.is_file():
        apt_install(["gimp-data"])
    return read_pattern(path)


def _photographed(rng, h, w):
    """A photographed surface: one of PHOTOGRAPHED's tiles, enlarged 2-3x (a close photo), tiled from a random
    offset over the frame."""
    tile = Image.fromarray(_pattern(PHOTOGRAPHED[int(rng.integers(len(PHOTOGRAPHED)))]))
    scale = rng.uniform(2, 3)
    tile = np.asarray(tile.resize((round(tile.width * scale), round(tile.height * scale)), Image.Resampling.BICUBIC))
    th, tw = tile.shape[:2]
    dy, dx = int(rng.integers(th)), int(rng.integers(tw))
    reps = ((h + dy) // th + 1, (w + dx) // tw + 1, 1)
    return np.tile(tile, reps)[dy : dy + h, dx : dx + w].astype(np.float32)


SURFACES = {"linen": _linen, "terrazzo": _terrazzo, "marble": _marble, "window light": _plain,
            "lamp light": _plain, "photographed": _photographed, "table edge": _table_edge,
            "table corner": _table_corner}
LIGHTS = {"lamp light": _lamp}  # a surface's own light, over the garment too; every scene's light stronger on one side


def _garment(im: Image.Image, rng: np.random.Generator, side: int, angle: float,
             photo_shaded: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """The garment in a colour of its own (half the time with stripes or checks), `side` px, turned `angle`°:
    its RGB, its alpha (the silhouette, 0-1) and whether it was patterned."""
    v = np.asarray(im.convert("L").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    colour = rng.uniform(20, 235, 3)
    # Fashion-MNIST's intensity is the garment's own shading: its colour dimmed to 55 % where the intensity is least
    # (or, shaded as a photo, where it is most)
    shade = (1 - 0.45 * v[..., None]) if photo_shaded else (0.55 + 0.45 * v[..., None])
    rgb = colour * shade + (1 - shade) * 255 * 0.15
    patterned = bool(rng.random() < 0.5)
    if patterned:
        yy, xx = np.mgrid[0:side, 0:side]
        period = rng.uniform(6, 16)
        stripes = (np.sin(yy * 2 * np.pi / period) > 0) if rng.random() < 0.5 else \
            ((np.sin(yy * 2 * np.pi / period) > 0) ^ (np.sin(xx * 2 * np.pi / period) > 0))
        rgb = np.where(stripes[..., None], rgb, rgb * 0.5 + rng.uniform(0, 255, 3) * 0.5)
    alpha = np.clip((v - 0.04) / 0.12, 0, 1)
    rgba = np.dstack([rgb, alpha * 255]).clip(0, 255).astype(np.uint8)
    turned = np.asarray(Image.fromarray(rgba, "RGBA").rotate(angle, Image.Resampling.BICUBIC, expand=True),
                        dtype=np.float32)
    return turned[..., :3], turned[..., 3] / 255, patterned


def scene(im: Image.Image, rng: np.random.Generator, surface: str,
          photo_shaded: bool = False) -> tuple[Image.Image, np.ndarray]:
    """The garment on `surface` (a name of SURFACES): the JPEG'd picture (its `info["patterned"]`: whether the
    garment wears stripes or checks its original does not show) and the garment's true mask [H, W] bool."""
    a = SURFACES[surface](rng, H, W).astype(np.float32)
    side = int(H * rng.uniform(0.4, 0.6))
    rgb, alpha, patterned = _garment(im, rng, side, float(rng.uniform(-8, 8)), photo_shaded)
    gh, gw = alpha.shape
    top, left = int(rng.integers(10, H - gh - 10 + 1)), int(rng.integers(10, W - gw - 10 + 1))
    # A soft shadow: the silhouette, shifted and blurred, darkens the surface under the garment's edge.
    shadow = np.zeros((H, W), np.float32)
    dy, dx = rng.integers(4, 12, 2) * rng.choice([-1, 1], 2)
    sy, sx = min(max(top + dy, 0), H - gh), min(max(left + dx, 0), W - gw)
    shadow[sy : sy + gh, sx : sx + gw] = alpha
    shadow = np.asarray(Image.fromarray((shadow * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6)),
                        dtype=np.float32) / 255
    a *= 1 - rng.uniform(0.25, 0.45) * shadow[..., None]
    full = np.zeros((H, W), np.float32)
    full[top : top + gh, left : left + gw] = alpha
    a[top : top + gh, left : left + gw] = (rgb * alpha[..., None]
                                           + a[top : top + gh, left : left + gw] * (1 - alpha[..., None]))
    # Light stronger on one side: a linear fall-off across the frame in a random direction.
    t = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ramp = ((xx - W / 2) * np.cos(t) + (yy - H / 2) * np.sin(t)) / (W / 2)
    a *= (1 + rng.uniform(0.15, 0.3) * ramp)[..., None]
    if surface in LIGHTS:
        a *= LIGHTS[surface](rng, H, W)[..., None]
    buf = io.BytesIO()
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    photo = Image.open(io.BytesIO(buf.getvalue()))
    photo.info["patterned"] = patterned
    return photo, full > 0.5


def on_surface(surface: str | None, photo_shaded: bool = False):
    """bench/robustness.py's transform: the picture on `surface` (None: one of SURFACES drawn at random)."""
    def transform(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        name = surface or list(SURFACES)[int(rng.integers(len(SURFACES)))]
        return scene(im, rng, name, photo_shaded)[0]
    return transform
