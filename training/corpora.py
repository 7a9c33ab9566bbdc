"""The pictures the generic backbone is pretrained on (training/pretrain.py), all reachable offline and none made
here: Debian's openclipart-png (clip art in category folders), the icon themes under /usr/share/icons, scikit-learn's
handwritten digits, and Fashion-MNIST's training split. Emoji image sets are kept out: they are reserved for an
independent check.

A tenth of openclipart's pictures (`held_out`, by a hash of the file's path) is never pretrained on: what a
benchmark queries with, so that no figure is measured on pictures the backbone has seen.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

OPENCLIPART = Path("/usr/share/openclipart/png")  # Debian's openclipart-png
ICONS = Path("/usr/share/icons")
SOURCES = ("openclipart", "icons", "digits", "fashion_mnist")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
MIN_ICON_SIDE = 32  # smaller icon renderings are left out (the same icon comes larger too)
# The icon themes pretraining reads: those a Debian desktop carries by default. Other themes (bench/styles.py installs
# some, to query the same icons drawn in another style) stay out of pretraining.
PRETRAIN_THEMES = ("Adwaita", "hicolor", "locolor")


def held_out(path: str | Path) -> bool:
    """Whether a picture is kept out of pretraining (a tenth of them, fixed by its path relative to its corpus)."""
    return hashlib.sha1(str(path).encode()).digest()[0] % 10 == 0


def openclipart_files(root: Path = OPENCLIPART) -> list[Path]:
    """Every PNG of openclipart-png, sorted."""
    return sorted(root.rglob("*.png"))


def icon_size(path: Path) -> int:
    """The side an icon theme files a rendering under (…/48x48/…), 0 for scalable or unknown."""
    return next((int(p.split("x")[0]) for p in path.parts if "x" in p and p.split("x")[0].isdigit()), 0)


def _icon_files(root: Path = ICONS, themes: tuple[str, ...] = PRETRAIN_THEMES) -> list[Path]:
    """The largest PNG rendering of every icon name, at least MIN_ICON_SIDE px, per theme."""
    best: dict[tuple[str, str], tuple[int, Path]] = {}
    for f in (f for theme in themes for f in (root / theme).rglob("*.png")):
        if "emoji" in str(f).lower():
            continue
        size = icon_size(f)
        key = (f.relative_to(root).parts[0], f.stem)
        if size >= MIN_ICON_SIDE and size > best.get(key, (0, f))[0]:
            best[key] = (size, f)
    return sorted(f for _, f in best.values())


def rgba(image: Image.Image, size: int) -> np.ndarray:
    """A picture as [size, size, 4] uint8: fitted into the square (aspect kept), transparency kept, the rest of the
    square transparent. Pictures without transparency are opaque."""
    image.draft("RGB", (size * 2, size * 2))
    image = image.convert("RGBA")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    square = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    square.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(square)


def _files(paths: list[Path], root: Path | None, size: int) -> np.ndarray:
    """The pictures at `paths` (those `held_out` of a corpus at `root` left out; None: none)."""
    out = []
    for f in paths:
        if root is not None and held_out(f.relative_to(root)):
            continue
        try:
            with Image.open(f) as image:
                out.append(rgba(image, size))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            log.warning("%s left out (%s)", f, e)
    return np.stack(out) if out else np.zeros((0, size, size, 4), np.uint8)


def _grey(images: list[Image.Image], size: int) -> np.ndarray:
    """Grey pictures (light strokes on black) as opaque RGBA."""
    a = np.stack([np.asarray(im.convert("L").resize((size, size), Image.Resampling.BICUBIC)) for im in images])
    return np.concatenate([np.repeat(a[..., None], 3, -1), np.full(a.shape + (1,), 255, np.uint8)], -1)


def load_corpora(size: int, sources=SOURCES, per_source: int | None = None) -> np.ndarray:
    """Every source's pictures as one [n, size, size, 4] uint8 array (RGBA), each source at most `per_source`
    (spread evenly). A source that is not on this machine is left out with a warning saying how to get it."""
    parts = []
    for source in sources:
        if source == "openclipart":
            if not OPENCLIPART.is_dir():
                log.warning("openclipart-png is not installed (apt-get install -y openclipart-png): left out")
                continue
            files = openclipart_files()
            part = _files(_spread(files, per_source), OPENCLIPART, size)
        elif source == "icons":
            part = _files(_spread(_icon_files(), per_source), ICONS, size)
        elif source == "digits":
            from sklearn.datasets import load_digits

            digits = load_digits().images
            part = _grey([Image.fromarray((d / 16 * 255).astype(np.uint8)) for d in _spread(list(digits), per_source)],
                         size)
        elif source == "fashion_mnist":
            from training.data import load_image_dataset

            train = load_image_dataset("fashion_mnist")["train"]
            rows = _spread(list(range(len(train))), per_source)
            part = _grey([train[i]["image"] for i in rows], size)
        elif Path(source).is_dir():  # a folder of your own pictures, sub-folders and all (none held out)
            files = sorted(f for f in Path(source).rglob("*") if f.suffix.lower() in PICTURE_SUFFIXES)
            part = _files(_spread(files, per_source), None, size)
        else:
            raise ValueError(f"unknown pretraining source {source!r}: name a folder of pictures or one of "
                             f"{', '.join(SOURCES)}")
        log.info("pretraining source %s: %d pictures", source, len(part))
        parts.append(part)
    if not parts:
        raise ValueError("no pretraining pictures: install openclipart-png or name other --sources")
    return np.concatenate(parts)


def _spread(items: list, n: int | None) -> list:
    if n is None or len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]
