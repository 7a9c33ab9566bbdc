"""The Search tab: a picture (upload, webcam, clipboard, URL) or a stored image, its results page by page, a click on
a result for more like it, and Back. Its layout and its handlers together."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from app.components import UploadedImage
from app.gallery import display_file, tiles
from app.requests import charge, errors
from app.service import SearchService
from indexer.ranking import METRICS, REGISTRY
from indexer.uploads import write_atomically
from training.images import sha256


def keep_upload(data: bytes) -> str:
    """Fetched bytes as a file in Gradio's upload cache (named by content), so the page can show them and the
    query image component can hand them back for the next page."""
    folder = Path(get_upload_folder()) / "fetched"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sha256(data)
    if not path.exists():
        write_atomically(path, data)
    return str(path)


class Handlers:
    """The tab's event handlers (bound methods: the API names each parameter and knows its default)."""

    def __init__(self, service: SearchService):
        self.service = service

    def _page(self, metric, found, offset):
        results, prediction, query = found
        return tiles(self.service, metric, results), results, prediction, offset, query, query["note"]

    @staticmethod
    def _args(metric, k, label_filter, threshold, offset):
        thr = float(threshold) if threshold not in (None, "", 0, 0.0) else None
        return metric, int(k), list(label_filter or []), thr, int(offset)

    def _run(self, image, like_id, metric, k, label_filter, threshold, offset):
        """One page of the current query: a stored image (`like_id`) if there is one, else the picture."""
        args = self._args(metric, k, label_filter, threshold, offset)
        if like_id and str(like_id).strip():
            return self._page(metric, self.service.search_by_id(str(like_id), *args), int(offset))
        if image is None:
            raise gr.Error("upload an image first (or click one of the examples)")
        return self._page(metric, self.service.search(self.service.read_upload(image), *args), int(offset))

    @errors
    def search(self, image, metric="cosine", k=10, label_filter=None, threshold=0, like_id=None,
               request: gr.Request = None):
        """The k nearest images to `image`: gallery (image, caption), results (rank, id, score, label, source),
        the predicted class with its top-3 probabilities, the offset of this page (0), and the query: how it was
        prepared, whether it is unlike the collection (`unlike`, `nearest_cosine`, `calibrated_floor`), `note`.
        With `like_id`, the stored image of that id is the query instead (as /search_by_id)."""
        charge(self.service, request, None if like_id else image)
        return self._run(image, like_id, metric, k, label_filter, threshold, 0)

    @errors
    def search_next(self, image, metric, k, label_filter, threshold, offset, like_id=None,
                    request: gr.Request = None):
        """The next k results of the same query (an upload's embedding is cached, a stored image's vectors are
        read back: no model run)."""
        charge(self.service, request)
        return self._run(image, like_id, metric, k, label_filter, threshold, int(offset or 0) + int(k))

    @errors
    def search_by_id(self, point_id, metric="cosine", k=10, label_filter=None, threshold=0,
                     request: gr.Request = None):
        """More like this: the stored image `point_id` (a result's `id`) is the query, with its stored vectors (no
        upload, no model run); it is left out of its own results. The predicted class is its stored label."""
        charge(self.service, request)
        found = self.service.search_by_id(point_id, *self._args(metric, k, label_filter, threshold, 0))
        return self._page(metric, found, 0)

    @errors
    def search_url(self, url, metric="cosine", k=10, label_filter=None, threshold=0, request: gr.Request = None):
        """A picture from an image URL (http/https; public addresses only unless URL_ALLOW_NETWORKS allows more;
        size, time and redirects limited), decoded like an upload. Returns the fetched picture, then /search's
        outputs."""
        who = charge(self.service, request)
        data = self.service.read_url(url)
        self.service.limiter.charge(who.client, len(data), requests=0)
        path = keep_upload(data)
        return (path, *self._run(path, "", metric, k, label_filter, threshold, 0))

    def pick(self, results, history, image, like_id, evt: gr.SelectData):
        """A click on a result: it becomes the query (shown as the query image); the query before goes on the
        history, for Back."""
        if not results or evt.index is None or evt.index >= len(results):
            raise gr.Error("that result is no longer on the page: search again")
        chosen = results[evt.index]
        history = [*(history or []), {"image": image, "like_id": like_id or ""}][-20:]
        return display_file(self.service, chosen), chosen["id"], history, gr.update(visible=True)

    @staticmethod
    def go_back(history):
        history = list(history or [])
        if not history:
            raise gr.Error("there is no earlier query to go back to")
        last = history.pop()
        return last["image"], last["like_id"], history, gr.update(visible=bool(history))


def build(service: SearchService) -> None:
    """The tab's layout and its events, inside the page's gr.Blocks."""
    h = Handlers(service)
    history = gr.State([])
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            image = UploadedImage(type="filepath", label="Query image", sources=["upload", "webcam", "clipboard"],
                                  height=260)
            with gr.Row():
                url = gr.Textbox(label="…or an image URL", placeholder="https://…/picture.jpg", scale=4,
                                 elem_id="query-url")
                url_btn = gr.Button("Fetch & search", scale=1, min_width=120)
            like_id = gr.Textbox(label="More like this stored image (id)", elem_id="like-id",
                                 placeholder="click a result to search with it, or paste a result's id")
            metric = gr.Radio(list(METRICS), value="cosine", label="Metric",
                              info=" · ".join(f"**{m.name}**: {m.help}" for m in REGISTRY.values()))
            k = gr.Slider(1, service.settings.max_k, value=10, step=1, label="k (results per page)")
            with gr.Accordion("Filters", open=False):
                label_filter = gr.Dropdown(service.embedder.labels, multiselect=True, label="Only these labels")
                threshold = gr.Number(value=0, label="Score threshold (0 = none): " + "; ".join(
                    f"{m.name}: {m.threshold}" for m in REGISTRY.values()))
            offset = gr.Number(value=0, visible=False, precision=0)
            with gr.Row():
                go = gr.Button("Search", variant="primary")
                more = gr.Button("Next k")
                back = gr.Button("← Back", visible=False, elem_id="back")
            prediction = gr.Label(num_top_classes=3, label="Predicted class")
        with gr.Column(scale=2, min_width=280):
            note = gr.Markdown(elem_id="query-note")
            gallery = gr.Gallery(label="Most similar · click one for more like it", columns=5, height="auto",
                                 object_fit="contain", allow_preview=False, elem_id="results")
            with gr.Accordion("Details (JSON)", open=False):
                results = gr.JSON(label="Results")
                query_info = gr.JSON(label="Query: how it was prepared")
    examples = service.example_files()
    if examples:
        gr.Examples(examples=examples, inputs=image, label="Examples from the collection")

    filters = [metric, k, label_filter, threshold]
    outputs = [gallery, results, prediction, offset, query_info, note]
    go.click(h.search, [image, *filters, like_id], outputs, api_name="search")
    more.click(h.search_next, [image, *filters, offset, like_id], outputs, api_name="search_next")
    # A new picture (file, webcam, clipboard, URL) ends the browsing of stored images.
    image.input(lambda: "", None, like_id, api_name=False)
    url_btn.click(lambda: "", None, like_id, api_name=False)
    url_btn.click(h.search_url, [url, *filters], [image, *outputs], api_name="search_url")
    url.submit(h.search_url, [url, *filters], [image, *outputs], api_name=False)
    gallery.select(h.pick, [results, history, image, like_id], [image, like_id, history, back], api_name=False
                   ).then(h.search_by_id, [like_id, *filters], outputs, api_name="search_by_id")
    back.click(h.go_back, [history], [image, like_id, history, back], api_name=False
               ).then(h.search, [image, *filters, like_id], outputs, api_name=False)
