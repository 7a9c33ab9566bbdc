"""The Batch and Duplicates tabs: several pictures at once, and near-duplicate groups. Each tab's layout and its
handlers together."""

from __future__ import annotations

import gradio as gr

from app.gallery import display_file
from app.requests import charge, errors
from app.service import SearchService
from app.settings import DUPLICATE_COSINE
from indexer.ranking import METRICS


class Handlers:
    def __init__(self, service: SearchService):
        self.service = service

    @errors
    def search_batch(self, files, metric="cosine", k=10, request: gr.Request = None):
        """Several images at once: one result list per image, in the order given."""
        if not files:
            raise gr.Error("choose one or more images")
        self.service.check_batch(len(files))  # the cap first: its message, not the rate limit's
        charge(self.service, request, *files, requests=len(files))
        return self.service.search_batch([self.service.read_upload(f) for f in files], metric, int(k))

    @errors
    def duplicates(self, threshold=DUPLICATE_COSINE, sample=1000, request: gr.Request = None):
        """Near-duplicate groups among a sample of the collection (cosine ≥ threshold)."""
        charge(self.service, request)
        groups = self.service.duplicates(threshold, sample)
        shown = [(display_file(self.service, m), f"group {g + 1} · {m['label']}")
                 for g, grp in enumerate(groups[:12]) for m in grp[:4]]
        return shown, groups



def build_batch(service: SearchService, h: Handlers) -> None:
    files = gr.File(file_count="multiple", label="Query images", type="filepath")
    with gr.Row():
        metric = gr.Radio(list(METRICS), value="cosine", label="Metric")
        k = gr.Slider(1, service.settings.max_k, value=10, step=1, label="k")
    button = gr.Button("Search all", variant="primary")
    out = gr.JSON(label="Results per image")
    button.click(h.search_batch, [files, metric, k], out, api_name="search_batch")


def build_duplicates(service: SearchService, h: Handlers) -> None:
    with gr.Row():
        threshold = gr.Slider(0.5, 1.0, value=DUPLICATE_COSINE, step=0.005, label="Near-duplicate if cosine ≥")
        most = service.settings.max_sample
        sample = gr.Slider(1, most, value=min(1000, most), step=1, label="Images sampled")
    button = gr.Button("Find near-duplicates")
    gallery = gr.Gallery(label="Groups", columns=8, height="auto")
    out = gr.JSON(label="Groups")
    button.click(h.duplicates, [threshold, sample], [gallery, out], api_name="duplicates")
