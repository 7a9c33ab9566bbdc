"""The Gradio app: every event has an `api_name`, so the page and `gradio_client` see the same endpoints.

One file per tab, each with its layout and its handlers (app/tab_search.py, app/tab_write.py, app/tab_more.py,
app/tab_collection.py);
what they share: app/requests.py (who is calling, fair use, errors as messages) and app/gallery.py (result tiles).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import gradio as gr

from app import tab_collection, tab_more, tab_search, tab_write
from app.gallery import serve_thumbnails_as_static
from app.service import SearchService

log = logging.getLogger(__name__)

INTRO = """# Search by image
Upload a picture (or click an example) and get the most similar images of the collection, best first."""

# Captions in full (Gradio cuts them at 80 % of the tile), over the tile's bottom; two tiles a row at phone width.
CSS = """
#results .caption-label, #map-neighbours .caption-label { white-space: normal; overflow: visible;
  text-overflow: clip; max-width: none; left: 0; right: 0; bottom: 0; border-radius: 0; line-height: 1.25; }
@media (max-width: 640px) {
  #results .grid-container, #map-neighbours .grid-container {
    grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
"""


def build_ui(service: SearchService) -> gr.Blocks:
    serve_thumbnails_as_static()
    more = tab_more.Handlers(service)
    with gr.Blocks(title="Search by image") as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(service.status())
        with gr.Tab("Search"):
            search = tab_search.build(service)
        with gr.Tab("Add & delete"):
            tab_write.build(service, demo, status)
        with gr.Tab("Batch"):
            tab_more.build_batch(service, more)
        with gr.Tab("Duplicates"):
            tab_more.build_duplicates(service, more)
        with gr.Tab("Collection") as collection:
            tab_collection.build(demo, service, collection, search)
    return demo


def allowed_paths(service: SearchService) -> list[str]:
    """Gradio serves only the examples folder besides its own cache."""
    return [str(Path(service.settings.data_dir, "examples").resolve())]


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """`user:password` lines (blank lines and # comments skipped) for Gradio's `auth`: the whole app behind a login."""
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            user, sep, password = line.strip().partition(":")
            if not sep or not user or not password:
                raise ValueError(f"{path} line {n}: write `user:password`")
            pairs.append((user, password))
    if not pairs:
        raise ValueError(f"{path} names no `user:password`")
    return pairs


def launch_options(service: SearchService) -> dict:
    """What every launch of the app passes to Gradio: the served folders, the page's CSS, the MCP server, the upload
    limit."""
    return dict(allowed_paths=allowed_paths(service), css=CSS, mcp_server=service.settings.mcp,
                max_file_size=f"{int(service.settings.max_upload_mb * 1024)}kb")


def launch(service: SearchService, host: str, port: int | None, **kwargs):
    """Serve the app; `port` None: the first free one from 7860 up (Gradio moves on when a bind fails)."""
    # Gradio's queue rebuilds a pandas DataFrame of every recorded event (up to 10,000) after *each* event, for
    # its monitoring dashboard, which this app does not use: a cost per search that grows with the number served
    # (profiled: 6 % of the server's GIL time after a few thousand searches). Summarise every 1,000 events instead.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    # The page's gr.State inputs (the examples being paged, whether a click searches) are hidden from the API: an
    # API or MCP call gets their defaults, as intended; Gradio's MCP server warns about them all the same.
    warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")
    demo = build_ui(service)
    demo.queue(default_concurrency_limit=4)
    log.info("serving host %s, port %s", host, port or "the first free from 7860")
    return demo.launch(server_name=host, server_port=port, show_error=True, **launch_options(service), **kwargs)
