"""Generated hostile and awkward image files: each (name, bytes) pair is one case a user may upload."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _png(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _patch_ihdr(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header declares width × height (with a valid CRC) over the original small pixel data."""
    ihdr = png[12:29]  # b"IHDR" + 13 bytes
    data = b"IHDR" + struct.pack(">II", width, height) + ihdr[12:17]
    return png[:8] + struct.pack(">I", 13) + data + struct.pack(">I", zlib.crc32(data)) + png[33:]


def photo(size=(64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (30, 30, 30))
    for x in range(size[0] // 2):
        for y in range(size[1]):
            image.putpixel((x, y), (200, 40, 40))
    return image


def bad_cases() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, a word the error message must contain)."""
    good_png = _png(photo())
    good_jpeg = _jpeg(photo())
    crc_broken = bytearray(good_png)
    idat = crc_broken.find(b"IDAT")
    crc_broken[idat + 6] ^= 0xFF  # a data byte flipped: the chunk's CRC no longer matches
    return {
        "text": (b"just some notes, not a picture\n" * 10, "not an image"),
        "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "not an image"),
        "executable": (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "not an image"),
        "empty": (b"", "empty"),
        "truncated_jpeg": (good_jpeg[: len(good_jpeg) // 2], "truncated"),
        "png_bad_checksum": (bytes(crc_broken), "damaged"),
        "decompression_bomb": (_patch_ihdr(_png(Image.new("L", (8, 8))), 100_000, 100_000), "Mpx"),
        "one_pixel": (_png(Image.new("RGB", (1, 1), (255, 0, 0))), "too small"),
        "huge_12000": (_png(Image.new("1", (12_000, 12_000))), "Mpx"),
    }


def awkward_cases() -> dict[str, bytes]:
    """Images that are unusual but fine: each must be converted and searched."""
    gif = io.BytesIO()
    frames = [photo(), Image.new("RGB", (64, 48), (0, 200, 0))]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    palette = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    sixteen = Image.new("I;16", (64, 48))
    sixteen.putdata([i * 20 for i in range(64 * 48)])
    return {
        "grayscale_16bit_png": _png(sixteen),
        "cmyk_jpeg": _jpeg(photo().convert("CMYK")),
        "palette_png_transparency": _png(palette, transparency=0),
        "rgba_png": _png(photo().convert("RGBA")),
        "animated_gif": gif.getvalue(),
        "jpeg_exif_rotated": _jpeg(photo(), exif=exif),
        "png_named_jpg": _png(photo()),  # the test names this file .jpg: the extension lies
    }
