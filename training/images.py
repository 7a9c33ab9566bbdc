"""The one image module: how a picture becomes the model's input, for training, indexing and queries alike.

bytes ──► open_image (decode, refuse what is unusable) ──► to_rgb (EXIF orientation, transparency, mode)
      ──► prepare (find the object, frame it like the collection's images: training/prepare.py)
      ──► preprocess (tensor for the model); training.prepare.model_input composes the last two, once

Decoding failures are a `BadImage` whose message says what to do."""

from __future__ import annotations

import hashlib
import io
import logging
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

MAX_PIXELS = 64_000_000  # 8,000 × 8,000; beyond that a decode costs hundreds of MB per upload
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL refuses (DecompressionBombError) at twice this, warns above it


class BadImage(ValueError):
    """An input that is not a usable image."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `data` fully (so truncation and bad checksums show now, not later) or raise BadImage."""
    if not data:
        raise BadImage("the file is empty; upload a PNG, JPEG, GIF, WebP or BMP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w * h > max_pixels:
                raise BadImage(
                    f"the image is {w}×{h} = {w * h / 1e6:.0f} Mpx; the limit is {max_pixels / 1e6:.0f} Mpx: "
                    "downscale it and try again"
                )
            if w < 2 or h < 2:
                raise BadImage(f"the image is {w}×{h} px, too small to search with; use a picture of at least 2×2 px")
            image.load()
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("the file is not an image PIL can read; upload a PNG, JPEG, GIF, WebP or BMP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(
            f"the image declares more than {max_pixels / 1e6:.0f} Mpx (a decompression bomb or a huge image); "
            "downscale it and try again"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"the image is damaged or truncated ({e}); re-export or re-download it") from None
    return image


# --- orientation, transparency, mode ---------------------------------------------------------------------
def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: honours EXIF rotation, composites transparency on white, takes a GIF's first frame."""
    image.seek(0) if getattr(image, "n_frames", 1) > 1 else None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float32)
        image = Image.fromarray((array / max(float(array.max()), 1.0) * 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


BORDER = 0.05  # the outer ring that gives the background colour: this share of the shorter side, at least 1 px
RESAMPLE = Image.Resampling.BILINEAR  # how `preprocess` resizes a prepared picture to the model's input size


def border_colour(a: np.ndarray) -> np.ndarray:
    """The median colour of a picture's outer ring (BORDER of its shorter side): what its background is taken to be."""
    b = max(1, round(min(a.shape[:2]) * BORDER))
    ring = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3),
                           a[:, -b:].reshape(-1, 3)])
    return np.median(ring, axis=0)


# --- the model's input ---------------------------------------------------------------------------------
def preprocess(images: list[Image.Image], size: int, mean, std) -> torch.Tensor:
    """PIL images → normalised float tensor [B, 3, size, size]. A picture that is not square is padded to a
    square with its border colour (never cropped, so no part of the object is cut off), then resized."""
    arrays = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        image = to_rgb(image)
        w, h = image.size
        if w != h:
            side = max(w, h)
            fill = tuple(int(v) for v in border_colour(np.asarray(image)))
            square = Image.new("RGB", (side, side), fill)
            square.paste(image, ((side - w) // 2, (side - h) // 2))
            image = square
        if image.size != (size, size):
            image = image.resize((size, size), RESAMPLE)
        arrays[i] = np.asarray(image)
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
