"""Decoding untrusted image bytes: every failure is a `BadImage` whose message says what to do."""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, UnidentifiedImageError

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
