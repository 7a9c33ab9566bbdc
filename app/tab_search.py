"""The Search tab: a picture (upload, webcam, clipboard, URL), a stored image, or several examples (more like these,
less like those), its results page by page, a click on a result for more like it (or to mark it), and Back. Its
layout and its handlers together."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from app.components import UploadedImage
from app.examples_box import CLICK_SEARCHES, examples_asked, examples_box, id_list, mark
from app.gallery import display_file, example_files, keep_upload, tiles
from app.requests import charge, errors
from app.service import SearchService
from indexer.ranking import METRICS, REGISTRY, STRATEGIES


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

    def _examples_page(self, examples: dict, args) -> tuple:
        read = self.service.read_upload
        positive = id_list(examples.get("positive_ids")) + [read(p) for p in examples.get("positive_pictures") or []]
        negative = id_list(examples.get("negative_ids")) + [read(p) for p in examples.get("negative_pictures") or []]
        return self.service.search_examples(positive, negative, *args, strategy=examples.get("strategy") or
                                            STRATEGIES[0])

    def _run(self, image, like_id, metric, k, label_filter, threshold, offset, examples=None):
        """One page of the current query: several examples if there are, else a stored image (`like_id`) if there
        is one, else the picture."""
        args = self._args(metric, k, label_filter, threshold, offset)
        if examples:
            return self._page(metric, self._examples_page(examples, args), int(offset))
        if like_id and str(like_id).strip():
            return self._page(metric, self.service.search_by_id(str(like_id), *args), int(offset))
        if image is None:
            raise gr.Error("upload an image first (or click one of the examples)")
        return self._page(metric, self.service.search(self.service.read_upload(image), *args), int(offset))

    @errors
    def search(self, image, metric="cosine", k=10, label_filter=None, threshold=0, like_id=None, examples=None,
               request: gr.Request = None):
        """Find the stored images most similar to a picture, best first.

        Args:
            image: the picture to search with (a file: PNG, JPEG, WebP, …; a photo is fine, it is framed like the
                collection's images first).
            metric: "cosine" (float features, best overall), "hamming" (binary codes, fastest) or "hamming+rerank".
            k: how many results (1 to the server's MAX_K, 100 by default).
            label_filter: only results with one of these labels (an empty list: every label).
            threshold: 0 for none; else the least cosine similarity (cosine, hamming+rerank) or the most bits apart
                (hamming).
            like_id: instead of the picture, search with the stored image of this id (a result's `id`).
        Returns:
            gallery (each result's image and caption), results (rank, id, score, label, source, sha256), the
            predicted class (top 3 with probabilities), offset 0, the query (how the picture was prepared;
            `unlike` true when it resembles nothing in the collection), and a one-sentence note.
        """
        charge(self.service, request, None if like_id or examples else image)
        return self._run(image, like_id, metric, k, label_filter, threshold, 0, examples)

    @errors
    def search_next(self, image, metric, k, label_filter, threshold, offset, like_id=None, examples=None,
                    request: gr.Request = None):
        """The next k results of the same query (an upload's embedding is cached, a stored image's vectors are
        read back: no model run)."""
        charge(self.service, request)
        return self._run(image, like_id, metric, k, label_filter, threshold, int(offset or 0) + int(k), examples)

    @errors
    def search_examples(self, positive_ids=None, negative_ids=None, positive_pictures=None, negative_pictures=None,
                        metric="cosine", k=10, label_filter=None, threshold=0, strategy="average_vector",
                        offset=0, request: gr.Request = None):
        """Find images like several examples and unlike others ("more like these, less like those").

        Args:
            positive_ids: ids of stored images (results' `id`s) to find more of, separated by commas or spaces.
            negative_ids: ids of stored images to find fewer of (may be empty).
            positive_pictures: picture files to find more of (besides or instead of positive_ids).
            negative_pictures: picture files to find fewer of.
            metric: "cosine", "hamming" or "hamming+rerank" (best_score needs "cosine").
            k: how many results.
            label_filter: only results with one of these labels (an empty list: every label).
            threshold: 0 for none, else as in search.
            strategy: "average_vector" (one query: 2 × the positives' mean − the negatives' mean; any metric) or
                "best_score" (each image scored by its most similar positive, pushed below all of them when a
                negative is more similar; for positives that are different things; cosine only).
            offset: how many results to skip (0 for the first page, k for the second, …).
        Returns:
            gallery, results (rank, id, score, label, source), no predicted class, the offset, the query (the
            examples by id/label or picture hash, the strategy) and a note. Stored examples are left out. At least
            one positive is needed.
        """
        pictures = [*(positive_pictures or []), *(negative_pictures or [])]
        charge(self.service, request, *pictures)
        examples = examples_asked(positive_ids, negative_ids, positive_pictures, negative_pictures, strategy)
        return self._run(None, "", metric, k, label_filter, threshold, int(offset or 0), examples)

    @errors
    def search_by_id(self, point_id, metric="cosine", k=10, label_filter=None, threshold=0, searches=True,
                     request: gr.Request = None):
        """Find more images like one already in the collection (no upload; it is left out of its own results).

        Args:
            point_id: the stored image's id (a result's `id`).
            metric: "cosine", "hamming" or "hamming+rerank".
            k: how many results.
            label_filter: only results with one of these labels (an empty list: every label).
            threshold: 0 for none, else as in search.
        Returns:
            gallery, results (rank, id, score, label, source), its stored label, offset 0, the query (`like`: its
            id, label and source) and a note.
        """
        if not searches:  # the page's click on a result marked it as an example instead
            return (gr.skip(),) * 6
        charge(self.service, request)
        found = self.service.search_by_id(point_id, *self._args(metric, k, label_filter, threshold, 0))
        return self._page(metric, found, 0)

    @errors
    def search_url(self, url, metric="cosine", k=10, label_filter=None, threshold=0, request: gr.Request = None):
        """Find the stored images most similar to a picture on the web.

        Args:
            url: the picture's http(s) address (public addresses only unless the server allows more; size, time
                and redirects are limited).
            metric: "cosine", "hamming" or "hamming+rerank".
            k: how many results.
            label_filter: only results with one of these labels (an empty list: every label).
            threshold: 0 for none, else as in search.
        Returns:
            the fetched picture, then search's outputs.
        """
        who = charge(self.service, request)
        data = self.service.read_url(url)
        self.service.limiter.charge(who.client, len(data), requests=0)
        path = keep_upload(data)
        return (path, *self._run(path, "", metric, k, label_filter, threshold, 0))

    @staticmethod
    def remember(history, image, like_id, examples):
        """The query on the page goes on the history, for Back."""
        entry = {"image": image, "like_id": like_id or "", "examples": examples}
        return [*(history or []), entry][-20:], gr.update(visible=True)

    def pick(self, results, history, image, like_id, examples, click, positive_ids, negative_ids,
             evt: gr.SelectData):
        """A click on a result: it becomes the query (shown as the query image; the query before goes on the
        history, for Back), or it is marked more or less like what is wanted (its id joins that box)."""
        if not results or evt.index is None or evt.index >= len(results):
            raise gr.Error("that result is no longer on the page: search again")
        chosen = results[evt.index]
        if click != CLICK_SEARCHES:
            return (*(gr.skip(),) * 5, *mark(chosen["id"], click, positive_ids, negative_ids), False)
        history, back = self.remember(history, image, like_id, examples)
        return display_file(self.service, chosen), chosen["id"], None, history, back, gr.skip(), gr.skip(), True

    @staticmethod
    def go_back(history):
        history = list(history or [])
        if not history:
            raise gr.Error("there is no earlier query to go back to")
        last = history.pop()
        return last["image"], last["like_id"], last.get("examples"), history, gr.update(visible=bool(history))


def build(service: SearchService) -> SimpleNamespace:
    """The tab's layout and its events, inside the page's gr.Blocks; its components returned (other tabs mark its
    results)."""
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
            ex = examples_box()
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
    examples = example_files(service)
    if examples:
        gr.Examples(examples=examples, inputs=image, label="Examples from the collection")
    components = SimpleNamespace(**locals())
    wire(h, components, ex)
    return components


def wire(h: Handlers, c: SimpleNamespace, ex: SimpleNamespace) -> None:
    """The tab's events: `c` the tab's components (build's), `ex` the examples box's."""
    filters = [c.metric, c.k, c.label_filter, c.threshold]
    outputs = [c.gallery, c.results, c.prediction, c.offset, c.query_info, c.note]
    by_examples = gr.State(None)  # the examples the page's results answer, while they do (paging, Back)
    first_page = gr.Number(value=0, visible=False, precision=0)  # the button's offset; API clients page with theirs
    searches = gr.State(True)  # whether the last click on a result searches (else it marked the result)
    c.go.click(h.search, [c.image, *filters, c.like_id, by_examples], outputs, api_name="search")
    c.more.click(h.search_next, [c.image, *filters, c.offset, c.like_id, by_examples], outputs,
                 api_name="search_next")
    # A new picture (file, webcam, clipboard, URL) ends the browsing of stored images and examples.
    c.image.input(lambda: ("", None), None, [c.like_id, by_examples], api_name=False)
    c.url_btn.click(lambda: ("", None), None, [c.like_id, by_examples], api_name=False)
    c.url_btn.click(h.search_url, [c.url, *filters], [c.image, *outputs], api_name="search_url")
    c.url.submit(h.search_url, [c.url, *filters], [c.image, *outputs], api_name=False)
    c.gallery.select(h.pick, [c.results, c.history, c.image, c.like_id, by_examples, ex.click, ex.positive_ids,
                              ex.negative_ids],
                     [c.image, c.like_id, by_examples, c.history, c.back, ex.positive_ids, ex.negative_ids, searches],
                     api_name=False
                     ).then(h.search_by_id, [c.like_id, *filters, searches], outputs, api_name="search_by_id")
    asked = [ex.positive_ids, ex.negative_ids, ex.positive_pictures, ex.negative_pictures]
    ex.go.click(h.remember, [c.history, c.image, c.like_id, by_examples], [c.history, c.back], api_name=False
                ).then(h.search_examples, [*asked, *filters, ex.strategy, first_page], outputs,
                       api_name="search_examples"
                       ).success(examples_asked, [*asked, ex.strategy], by_examples, api_name=False)
    c.back.click(h.go_back, [c.history], [c.image, c.like_id, by_examples, c.history, c.back], api_name=False
                 ).then(h.search, [c.image, *filters, c.like_id, by_examples], outputs, api_name=False)
