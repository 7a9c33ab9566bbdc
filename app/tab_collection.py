"""The Collection tab: what the collection holds (a sentence, images per label) and its map — a sample of its images
placed by their float vectors, coloured by label, with the Search tab's query and results marked; a click on the
map searches for more like the point clicked. Its layout and its handlers together."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd

from app.collection_map import MapKeeper, draw
from app.gallery import tiles
from app.requests import charge, errors
from app.service import SearchService
from indexer.atlas import NEIGHBOURS

NO_MAP = "The map is being computed (in the background, once per version of the collection): press Refresh soon."


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


class Handlers:
    def __init__(self, service: SearchService, keeper: MapKeeper):
        self.service, self.keeper = service, keeper

    @errors
    def overview(self):
        """What the collection holds.

        Returns:
            the collection's name, its number of images, the images per label, and the model, binary code length
            (`n_bits`) and float vector size that built it.
        """
        return self.service.overview()

    @errors
    def collection_map(self, request: gr.Request = None):
        """A 2-D map of the collection: a sample of its images placed so that images the model finds alike lie close.

        Returns:
            `ids` and `labels` of the sampled images, `xy` their places in [0, 1]² (t-SNE over 50 PCA directions of
            their float vectors), `points` (the collection's size), `version`, `method`, `seconds`; `{}` while the
            map is being computed (ask again shortly).
        """
        charge(self.service, request)
        return self.keeper.current() or {}

    def _marks(self, results, query) -> dict[str, np.ndarray]:
        """The Search tab's current answer as places: its results, and its query (a stored image or the examples
        where they are; an uploaded picture where its nearest results are)."""
        ids = [r["id"] for r in results or []]
        if not ids:
            return {}
        marks = {"results": self.keeper.places(ids)}
        query = query or {}
        asked = ([query["like"]["id"]] if query.get("like") else
                 [e["id"] for e in (query.get("examples") or {}).get("positive", []) if "id" in e])
        # An uploaded picture has no stored vector here: it is placed among its nearest results.
        marks["query"] = (self.keeper.places(asked) if asked else
                          np.nanmean(marks["results"][:NEIGHBOURS], axis=0))
        return marks

    @errors
    def show(self, results=None, query=None):
        """The map as a picture, with the Search tab's query and results marked, and a sentence about it."""
        m = self.keeper.current()
        if not m:
            return None, NO_MAP
        marks = self._marks(results, query)
        note = (f"{len(m['ids']):,} of {m['points']:,} images, placed by their float vectors ({m['method']}, "
                f"{m['seconds']:.0f} s); nearby points look alike to the model. Click a point for more like it.")
        if marks:
            note += (" ★ the current query" + ("" if query and (query.get("like") or query.get("examples")) else
                                                " (a picture: placed among its nearest results)") + ", ○ its results.")
        return draw(m, marks), note

    @errors
    def click(self, evt: gr.SelectData, request: gr.Request = None):
        """A click on the map: the nearest point's neighbours (as /search_by_id), shown below and marked."""
        if self.keeper.current() is None or evt.index is None:
            raise gr.Error(NO_MAP)
        n = self.keeper.point_at(*evt.index[:2])
        if n is None:
            raise gr.Error("click on a point of the map")
        m = self.keeper.current()
        charge(self.service, request)
        results, label, query = self.service.search_by_id(m["ids"][n], "cosine", 10)
        marks = {"results": self.keeper.places([r["id"] for r in results]), "query": np.asarray(m["xy"][n])}
        note = f"Neighbours of the point clicked (`{m['ids'][n]}`, {label or 'no label'}): ★ it, ○ them."
        return draw(m, marks), note, tiles(self.service, "cosine", results), results


def build(demo: gr.Blocks, service: SearchService, tab: gr.Tab, search: SimpleNamespace) -> None:
    """The tab's layout and events; `search`: the Search tab's components (its results and query are marked)."""
    keeper = MapKeeper(service)
    service.listeners.append(keeper.stale)  # writes and model switches make the map stale
    keeper.stale()  # computed at start when the collection changed since its map (or has none)
    h = Handlers(service, keeper)
    refresh = gr.Button("Refresh")
    summary = gr.Markdown(elem_id="collection-summary")
    bars = gr.BarPlot(x="label", y="images", label="Images per label", sort="x", y_axis_format=",d",
                      x_label_angle=-45, elem_id="label-counts")  # slanted: labels stay apart on a phone
    map_note = gr.Markdown(elem_id="map-note")
    picture = gr.Image(label="Map of the collection · click a point for more like it", interactive=False,
                       show_label=False,
                       type="filepath", elem_id="collection-map", buttons=["fullscreen"])
    neighbours = gr.Gallery(label="More like the point clicked", columns=5, height="auto", object_fit="contain",
                            allow_preview=False, elem_id="map-neighbours")
    with gr.Accordion("Details (JSON)", open=False):
        info = gr.JSON(label="Overview")
        found = gr.JSON(label="Neighbours")
        data = gr.JSON(label="Map", visible=False)
    marked = [search.results, search.query_info]
    refresh.click(h.overview, None, info, api_name="overview").then(collection_view, info, [summary, bars],
                                                                    api_name=False
                                                                    ).then(h.show, marked, [picture, map_note],
                                                                           api_name=False)
    demo.load(h.overview, None, info, api_name=False).then(collection_view, info, [summary, bars], api_name=False)
    tab.select(h.show, marked, [picture, map_note], api_name=False)
    picture.select(h.click, None, [picture, map_note, neighbours, found], api_name=False)
    gr.Button(visible=False).click(h.collection_map, None, data, api_name="collection_map")
