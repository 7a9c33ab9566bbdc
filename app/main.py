"""The Gradio app: every event has an `api_name`, so the page and `gradio_client` see the same endpoints."""

from __future__ import annotations

import functools
import io
import json
import logging
import os
from pathlib import Path

import gradio as gr
import pandas as pd
from gradio.utils import get_upload_folder

from app.access import Caller, Refused, client_address
from app.components import UploadedImage
from app.service import SearchService
from indexer.ranking import METRICS, REGISTRY
from indexer.store import StoreError
from indexer.uploads import write_atomically
from training.images import BadImage, sha256

log = logging.getLogger(__name__)
THUMBS = Path(get_upload_folder()) / "search-results"  # inside the blocks' cache: served as is

INTRO = """# Search by image
Upload a picture (or click an example) and get the most similar images of the collection, best first."""


def _errors(fn):
    """Errors a person can fix become gr.Error (a message in the page, an error the API client sees). The
    signature is kept (functools.wraps), so the API names each parameter and knows its default."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (BadImage, StoreError, ValueError, FileNotFoundError, Refused) as e:
            raise gr.Error(str(e)) from None
        except Exception as e:  # the server keeps serving; the log has the traceback
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"unexpected error ({type(e).__name__}); the server log has the details") from None

    return wrapped


def _display_file(service: SearchService, result: dict) -> str:
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
            return _missing_tile()
        _write_png(path, image)
    return str(path)


# Part of a thumbnail's name: a change to how a stored picture is drawn (SearchService.image_of) changes it, so the
# tiles drawn before are not served from the cache.
DISPLAY_VERSION = "rgb2"


def _write_png(path: Path, image) -> None:
    THUMBS.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    image.save(png, format="PNG")
    write_atomically(path, png.getvalue())


def _missing_tile() -> str:
    """A grey tile that says the picture cannot be shown (its file is gone, or unreadable)."""
    from PIL import Image, ImageDraw

    path = THUMBS / f"missing.{DISPLAY_VERSION}.png"
    if not path.exists():
        tile = Image.new("RGB", (96, 96), (200, 200, 200))
        ImageDraw.Draw(tile).text((12, 40), "not found", fill=(80, 80, 80))
        _write_png(path, tile)
    return str(path)


def _caption(metric: str, r: dict) -> str:
    return f"#{r['rank']} {r['label'] or 'no label'} · {REGISTRY[metric].caption(r['score'])}"


# Captions in full (Gradio cuts them at 80 % of the tile), over the tile's bottom; two tiles a row at phone width.
CSS = """
#results .caption-label { white-space: normal; overflow: visible; text-overflow: clip; max-width: none;
  left: 0; right: 0; bottom: 0; border-radius: 0; line-height: 1.25; }
@media (max-width: 640px) {
  #results .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
"""


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


def build_ui(service: SearchService) -> gr.Blocks:
    labels = service.embedder.labels
    serve_thumbnails_as_static()

    def _page(metric, found, offset):
        results, prediction, query = found
        gallery = [(_display_file(service, r), _caption(metric, r)) for r in results]  # aligned: tile i is result i
        return gallery, results, prediction, offset, query, query["note"]

    def _caller(request: gr.Request | None, profile=None, oauth_token=None, token_text=None) -> Caller:
        headers = request.headers if request is not None else {}
        bearer = headers.get("authorization") or ""
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
        user = getattr(profile, "username", None)
        orgs: tuple[str, ...] = ()
        if user and oauth_token is not None and service.access.write_orgs:
            from huggingface_hub import whoami

            orgs = tuple(o["name"].lower() for o in whoami(oauth_token.token).get("orgs", []))
        peer = request.client.host if request is not None and request.client else "unknown"
        getlist = getattr(headers, "getlist", None)
        forwarded = getlist("x-forwarded-for") if getlist else headers.get("x-forwarded-for")
        host = client_address(peer, forwarded, service.settings.trusted_hops)
        return Caller(client=host, user=user, orgs=orgs,
                      token=token or str(token_text or "").strip())

    def _charge(request, *paths, nbytes: int = 0, requests: int = 1) -> Caller:
        """Fair use: one request (and the pictures it sends) against this client's allowance."""
        caller = _caller(request)
        sizes = sum(os.path.getsize(p) for p in paths if p and os.path.exists(p))
        service.limiter.charge(caller.client, sizes + nbytes, requests)
        return caller

    def _args(metric, k, label_filter, threshold, offset):
        thr = float(threshold) if threshold not in (None, "", 0, 0.0) else None
        return metric, int(k), list(label_filter or []), thr, int(offset)

    def _run(image, like_id, metric, k, label_filter, threshold, offset):
        """One page of the current query: a stored image (`like_id`) if there is one, else the picture."""
        args = _args(metric, k, label_filter, threshold, offset)
        if like_id and str(like_id).strip():
            return _page(metric, service.search_by_id(str(like_id), *args), int(offset))
        if image is None:
            raise gr.Error("upload an image first (or click one of the examples)")
        return _page(metric, service.search(service.read_upload(image), *args), int(offset))

    @_errors
    def search(image, metric="cosine", k=10, label_filter=None, threshold=0, like_id=None,
               request: gr.Request = None):
        """The k nearest images to `image`: gallery (image, caption), results (rank, id, score, label, source),
        the predicted class with its top-3 probabilities, the offset of this page (0), and the query: how it was
        prepared, whether it is unlike the collection (`unlike`, `nearest_cosine`, `calibrated_floor`), `note`.
        With `like_id`, the stored image of that id is the query instead (as /search_by_id)."""
        _charge(request, None if like_id else image)
        return _run(image, like_id, metric, k, label_filter, threshold, 0)

    @_errors
    def search_next(image, metric, k, label_filter, threshold, offset, like_id=None, request: gr.Request = None):
        """The next k results of the same query (an upload's embedding is cached, a stored image's vectors are
        read back: no model run)."""
        _charge(request)
        return _run(image, like_id, metric, k, label_filter, threshold, int(offset or 0) + int(k))

    @_errors
    def search_by_id(point_id, metric="cosine", k=10, label_filter=None, threshold=0, request: gr.Request = None):
        """More like this: the stored image `point_id` (a result's `id`) is the query, with its stored vectors (no
        upload, no model run); it is left out of its own results. The predicted class is its stored label."""
        _charge(request)
        return _page(metric, service.search_by_id(point_id, *_args(metric, k, label_filter, threshold, 0)), 0)

    @_errors
    def search_url(url, metric="cosine", k=10, label_filter=None, threshold=0, request: gr.Request = None):
        """A picture from an image URL (http/https; public addresses only unless URL_ALLOW_NETWORKS allows more;
        size, time and redirects limited), decoded like an upload. Returns the fetched picture, then /search's
        outputs."""
        caller = _charge(request)
        data = service.read_url(url)
        service.limiter.charge(caller.client, len(data), requests=0)
        path = _keep_upload(data)
        return (path, *_run(path, "", metric, k, label_filter, threshold, 0))

    def pick(results, history, image, like_id, evt: gr.SelectData):
        """A click on a result: it becomes the query (shown as the query image); the query before goes on the
        history, for Back."""
        if not results or evt.index is None or evt.index >= len(results):
            raise gr.Error("that result is no longer on the page: search again")
        chosen = results[evt.index]
        history = [*(history or []), {"image": image, "like_id": like_id or ""}][-20:]
        return _display_file(service, chosen), chosen["id"], history, gr.update(visible=True)

    def go_back(history):
        history = list(history or [])
        if not history:
            raise gr.Error("there is no earlier query to go back to")
        last = history.pop()
        return last["image"], last["like_id"], history, gr.update(visible=bool(history))

    @_errors
    def add(files, label, token=None, request: gr.Request = None, profile: gr.OAuthProfile | None = None,
            oauth_token: gr.OAuthToken | None = None):
        """Add uploaded images (one label for all, optional) to the collection; returns what was added. Where the
        collection is read-only, needs a credential: the admin token (an `Authorization: Bearer` header, or
        `token`) or a signed-in writer."""
        caller = _caller(request, profile, oauth_token, token)
        who = service.access.writer(caller, "add")
        if not files:
            raise gr.Error("choose one or more image files to add")
        _charge(request, *files)
        items = [(service.read_upload(f), label or None) for f in files]
        added, errors = service.add(items)
        service.access.audit(caller, "add", len(added), who, [a["id"] for a in added],
                             note=f"{len(errors)} refused" if errors else "")
        if not added:
            raise gr.Error("nothing was added: " + "; ".join(errors))
        return {"added": added, "errors": errors}, service.status()

    @_errors
    def delete(ids, token=None, request: gr.Request = None, profile: gr.OAuthProfile | None = None,
               oauth_token: gr.OAuthToken | None = None):
        """Delete images by id (comma- or newline-separated); needs a credential like /add."""
        caller = _caller(request, profile, oauth_token, token)
        who = service.access.writer(caller, "delete")
        _charge(request)
        wanted = [i for i in str(ids or "").replace(",", "\n").splitlines() if i.strip()]
        if not wanted:
            raise gr.Error("give the id(s) of the image(s) to delete (the `id` of a search result)")
        deleted = service.delete(wanted)
        service.access.audit(caller, "delete", len(deleted), who, deleted)
        return {"deleted": len(deleted)}, service.status()

    @_errors
    def search_batch(files, metric="cosine", k=10, request: gr.Request = None):
        """Several images at once: one result list per image, in the order given."""
        if not files:
            raise gr.Error("choose one or more images")
        service.check_batch(len(files))  # the cap first: its message, not the rate limit's
        _charge(request, *files, requests=len(files))
        return service.search_batch([service.read_upload(f) for f in files], metric, int(k))

    @_errors
    def duplicates(threshold=0.98, sample=1000, request: gr.Request = None):
        """Near-duplicate groups among a sample of the collection (cosine ≥ threshold)."""
        _charge(request)
        groups = service.duplicates(threshold, sample)
        shown = [(_display_file(service, m), f"group {g + 1} · {m['label']}") for g, grp in enumerate(groups[:12])
                 for m in grp[:4]]
        return shown, groups

    @_errors
    def check_duplicates(file, threshold=0.98, request: gr.Request = None):
        """Before adding an image: which stored images it would duplicate."""
        if not file:
            raise gr.Error("choose an image to check")
        _charge(request, file)
        return service.check_duplicates(service.read_upload(file), float(threshold))

    @_errors
    def overview():
        """How many images, per-label counts, and the model and bit count that built the collection."""
        return service.overview()

    def who_may_write(profile: gr.OAuthProfile | None = None):
        """The write tab's sentence for whoever is signed in (organisations are checked when they write)."""
        user = getattr(profile, "username", None)
        if user and user.lower() in service.access.write_users:
            return f"Signed in as @{user}: you may add and delete."
        return service.access.describe(user)

    with gr.Blocks(title="Search by image") as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(service.status())
        history = gr.State([])
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    image = UploadedImage(type="filepath", label="Query image",
                                          sources=["upload", "webcam", "clipboard"], height=260)
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
                        label_filter = gr.Dropdown(labels, multiselect=True, label="Only these labels")
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
        with gr.Tab("Add & delete"):
            access_note = gr.Markdown(service.access.describe(), elem_id="access-note")
            if service.access.oauth:
                gr.LoginButton()
            admin_token = gr.Textbox(label="Admin token", type="password", visible=service.access.token_set,
                                     placeholder="the ADMIN_TOKEN this app was started with", elem_id="admin-token")
            files = gr.File(file_count="multiple", label="Images to add", type="filepath", elem_id="add-files")
            add_label = gr.Textbox(label="Label (optional)", placeholder=", ".join(labels[:3]) + ", …")
            add_btn = gr.Button("Add to collection", variant="primary")
            add_out = gr.JSON(label="Added")
            with gr.Row():
                dup_file = gr.File(label="Check one image for duplicates before adding it", type="filepath")
                dup_thr = gr.Slider(0.5, 1.0, value=0.98, step=0.005, label="Duplicate if cosine ≥")
            dup_btn = gr.Button("Check for duplicates")
            dup_out = gr.JSON(label="Would duplicate")
            del_ids = gr.Textbox(label="Ids to delete", lines=2)
            del_btn = gr.Button("Delete", variant="stop")
            del_out = gr.JSON(label="Deleted")
        with gr.Tab("Batch"):
            batch_files = gr.File(file_count="multiple", label="Query images", type="filepath")
            with gr.Row():
                batch_metric = gr.Radio(list(METRICS), value="cosine", label="Metric")
                batch_k = gr.Slider(1, service.settings.max_k, value=10, step=1, label="k")
            batch_btn = gr.Button("Search all", variant="primary")
            batch_out = gr.JSON(label="Results per image")
        with gr.Tab("Duplicates"):
            with gr.Row():
                groups_thr = gr.Slider(0.5, 1.0, value=0.98, step=0.005, label="Near-duplicate if cosine ≥")
                most = service.settings.max_sample
                groups_sample = gr.Slider(1, most, value=min(1000, most), step=1, label="Images sampled")
            groups_btn = gr.Button("Find near-duplicates")
            groups_gallery = gr.Gallery(label="Groups", columns=8, height="auto")
            groups_out = gr.JSON(label="Groups")
        with gr.Tab("Collection"):
            info_btn = gr.Button("Refresh")
            summary = gr.Markdown(elem_id="collection-summary")
            bars = gr.BarPlot(x="label", y="images", label="Images per label", sort="x", y_axis_format=",d",
                              x_label_angle=-45, elem_id="label-counts")  # slanted: labels stay apart on a phone
            with gr.Accordion("Details (JSON)", open=False):
                info = gr.JSON(label="Overview")

        filters = [metric, k, label_filter, threshold]
        outputs = [gallery, results, prediction, offset, query_info, note]
        go.click(search, [image, *filters, like_id], outputs, api_name="search")
        more.click(search_next, [image, *filters, offset, like_id], outputs, api_name="search_next")
        # A new picture (file, webcam, clipboard, URL) ends the browsing of stored images.
        image.input(lambda: "", None, like_id, api_name=False)
        url_btn.click(lambda: "", None, like_id, api_name=False)
        url_btn.click(search_url, [url, *filters], [image, *outputs], api_name="search_url")
        url.submit(search_url, [url, *filters], [image, *outputs], api_name=False)
        gallery.select(pick, [results, history, image, like_id], [image, like_id, history, back], api_name=False
                       ).then(search_by_id, [like_id, *filters], outputs, api_name="search_by_id")
        back.click(go_back, [history], [image, like_id, history, back], api_name=False
                   ).then(search, [image, *filters, like_id], outputs, api_name=False)
        add_btn.click(add, [files, add_label, admin_token], [add_out, status], api_name="add")
        del_btn.click(delete, [del_ids, admin_token], [del_out, status], api_name="delete")
        dup_btn.click(check_duplicates, [dup_file, dup_thr], dup_out, api_name="check_duplicates")
        batch_btn.click(search_batch, [batch_files, batch_metric, batch_k], batch_out, api_name="search_batch")
        groups_btn.click(duplicates, [groups_thr, groups_sample], [groups_gallery, groups_out], api_name="duplicates")
        info_btn.click(overview, None, info, api_name="overview").then(collection_view, info, [summary, bars],
                                                                        api_name=False)
        demo.load(overview, None, info, api_name=False).then(collection_view, info, [summary, bars], api_name=False)
        if service.access.oauth:
            demo.load(who_may_write, None, access_note, api_name=False)
    return demo


def collection_view(info: dict | None):
    """The overview for a person: a sentence, and the per-label counts as a bar chart whose axis starts at 0."""
    if not info:
        return "", None
    counts = info.get("labels") or {}
    text = (f"**{info['images']:,} images** in `{info['collection']}`, {len(counts)} labels; built by "
            f"`{info['model']}` ({info['n_bits']}-bit codes, {info['float_dim']}-d float vectors).")
    table = pd.DataFrame({"label": [str(k) for k in counts], "images": list(counts.values())})
    top = max(counts.values(), default=0)
    # From 0, whatever the counts: equal counts (Fashion-MNIST's) otherwise make an axis of one value and no bars.
    return text, gr.BarPlot(value=table, y_lim=[0, max(1, round(top * 1.1))])


def _keep_upload(data: bytes) -> str:
    """Fetched bytes as a file in Gradio's upload cache (named by content), so the page can show them and the
    query image component can hand them back for the next page."""
    folder = Path(get_upload_folder()) / "fetched"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sha256(data)
    if not path.exists():
        write_atomically(path, data)
    return str(path)


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
    """What every launch of the app passes to Gradio: the served folders, the page's CSS, the upload limit."""
    return dict(allowed_paths=allowed_paths(service), css=CSS,
                max_file_size=f"{int(service.settings.max_upload_mb * 1024)}kb")


def launch(service: SearchService, host: str, port: int | None, **kwargs):
    """Serve the app; `port` None: the first free one from 7860 up (Gradio moves on when a bind fails)."""
    # Gradio's queue rebuilds a pandas DataFrame of every recorded event (up to 10,000) after *each* event, for
    # its monitoring dashboard, which this app does not use: a cost per search that grows with the number served
    # (profiled: 6 % of the server's GIL time after a few thousand searches). Summarise every 1,000 events instead.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    demo = build_ui(service)
    demo.queue(default_concurrency_limit=4)
    log.info("serving %s", json.dumps({"host": host, "port": port}))
    return demo.launch(server_name=host, server_port=port, show_error=True, **launch_options(service), **kwargs)
