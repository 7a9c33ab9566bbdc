"""What the page shows of results: thumbnails in Gradio's cache, one tile per result, and their captions."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from app.service import SearchService
from indexer.ranking import REGISTRY
from indexer.uploads import write_atomically
from training.images import sha256

THUMBS = Path(get_upload_folder()) / "search-results"  # inside the blocks' cache: served as is
# Part of a thumbnail's name: a change to how a stored picture is drawn (SearchService.image_of) changes it, so the
# tiles drawn before are not served from the cache.
DISPLAY_VERSION = "rgb2"


def display_file(service: SearchService, result: dict) -> str:
    """The result's image as a PNG inside Gradio's cache, written once and atomically (temp file + rename); a
    placeholder tile when it cannot be shown, so that a gallery's tiles and its results stay one list (a click
    on tile i is result i).

    Named by the image's content (its sha256), never by its point id: an id names a source (a dataset row, a
    folder's file), and a rebuilt folder can put other pictures at the same source. Handing Gradio PIL images
    instead makes it re-encode and *rewrite* the same cache file on every request
    (gradio.processing_utils.save_pil_to_cache), so under concurrent load one client could download a file
    another request had just truncated (seen: RemoteProtocolError in the 16-client load test)."""
    key = result.get("sha256") or f"{service.settings.collection}-{result['id']}"  # a point from before sha256
    path = THUMBS / f"{key}.{DISPLAY_VERSION}.png"
    if not path.exists():
        image = service.image_of(result)
        if image is None:
            return missing_tile()
        _write_png(path, image)
    return str(path)


def _write_png(path: Path, image) -> None:
    THUMBS.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    image.save(png, format="PNG")
    write_atomically(path, png.getvalue())


def missing_tile() -> str:
    """A grey tile that says the picture cannot be shown (its file is gone, or unreadable)."""
    from PIL import Image, ImageDraw

    path = THUMBS / f"missing.{DISPLAY_VERSION}.png"
    if not path.exists():
        tile = Image.new("RGB", (96, 96), (200, 200, 200))
        ImageDraw.Draw(tile).text((12, 40), "not found", fill=(80, 80, 80))
        _write_png(path, tile)
    return str(path)


def caption(metric: str, r: dict) -> str:
    return f"#{r['rank']} {r['label'] or 'no label'} · {REGISTRY[metric].caption(r['score'])}"


def tiles(service: SearchService, metric: str, results: list[dict]) -> list[tuple[str, str]]:
    """One (file, caption) per result, in order: tile i is result i."""
    return [(display_file(service, r), caption(metric, r)) for r in results]


def serve_thumbnails_as_static() -> None:
    """Result thumbnails are files this app writes once and never changes: static paths are served as they are.

    Otherwise Gradio re-checks and re-caches every gallery file twice per response (allowed/blocked paths, the
    cache dir, each with a realpath): bench/serving.py's server CPU per request shows what that costs."""
    from gradio.data_classes import _StaticFiles

    THUMBS.mkdir(parents=True, exist_ok=True)
    if THUMBS.resolve() not in _StaticFiles.all_paths:
        gr.set_static_paths([THUMBS])
        # First in the list: each gallery file is checked against the static paths in order (two realpaths each).
        _StaticFiles.all_paths.insert(0, _StaticFiles.all_paths.pop())


def example_files(service: SearchService) -> list[str]:
    """One stored image per label (up to `examples`), written once under <data_dir>/examples."""
    out = Path(service.settings.data_dir) / "examples"
    existing = sorted(str(p) for p in out.glob("*.png"))
    if existing or service.store is None:
        return existing
    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict] = {}
    hits, _ = service.store.scroll(limit=500)
    for h in hits:
        seen.setdefault(h.payload.get("label"), dict(h.payload, id=h.id))
    files = []
    for n, (label, payload) in enumerate(sorted(seen.items(), key=lambda kv: str(kv[0]))):
        if n >= service.settings.examples:
            break
        image = service.image_of(payload)
        if image is None:
            continue
        safe = "".join(c if c.isalnum() else "_" for c in str(label))
        path = out / f"{n:02d}_{safe}.png"
        image.save(path)
        files.append(str(path))
    return files


def keep_upload(data: bytes) -> str:
    """Fetched bytes as a file in Gradio's upload cache (named by content), so the page can show them and the
    query image component can hand them back for the next page."""
    folder = Path(get_upload_folder()) / "fetched"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sha256(data)
    if not path.exists():
        write_atomically(path, data)
    return str(path)
