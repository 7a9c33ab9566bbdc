"""The map of the collection as the page shows it: the stored map (indexer.atlas) kept fresh in the background after
the collection changes, drawn as a picture with the current query and its results marked, and a click on it turned
back into the nearest point.

The picture's geometry is fixed (`FIGURE`, `AXES`), so a pixel the page reports for a click maps back to the map's
coordinates exactly (`point_at`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time

import numpy as np

from app.gallery import THUMBS
from indexer import atlas
from indexer.uploads import write_atomically

log = logging.getLogger(__name__)

FIGURE = (720, 900)  # the picture, width × height in pixels: the map square on top, its legend below
AXES = (10, 10, 700, 700)  # the map's square in it: left, top, width, height (pixels); [0, 1]² drawn with MARGIN
MARGIN = 0.03
MAP_VERSION = "m1"  # part of a drawn map's file name: a change to the drawing is not served from the cache


class MapKeeper:
    """The collection's map for one app: read from the collection, recomputed in the background when stale (at
    start, after writes, after a model switch), its sampled points' vectors kept for placing other vectors."""

    def __init__(self, service):
        self.service = service
        self._map: dict | None = None
        self._vectors: np.ndarray | None = None  # the sample's float vectors, for the current map
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False  # a write came while a refresh ran: run once more after it

    def current(self) -> dict | None:
        """The map to show now (None while the first is computed); a refresh starts if none is under way (none has
        run yet, or the last one failed: the collection was down, say)."""
        if self._map is None and (self._thread is None or not self._thread.is_alive()):
            self.stale()
        return self._map

    def stale(self) -> None:
        """The collection changed: compute its map again in the background (once more if one is running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._thread = threading.Thread(target=self._refresh, name="collection-map", daemon=True)
            self._thread.start()

    def _refresh(self) -> None:
        while True:
            started = time.monotonic()
            try:
                store = self.service.require_store()
                fresh = atlas.refresh(store, self.service.write_lock)
                found = {h.id: h.float_vector for h in store.retrieve(fresh["ids"], with_vectors=["float"])}
                keep = [i for i, pid in enumerate(fresh["ids"]) if pid in found]  # deleted meanwhile: left off
                vectors = np.stack([found[fresh["ids"][i]] for i in keep]) if keep else np.zeros((0, 1))
                fresh = dict(fresh, ids=[fresh["ids"][i] for i in keep], labels=[fresh["labels"][i] for i in keep],
                             xy=[fresh["xy"][i] for i in keep])
                self._map, self._vectors = fresh, vectors / np.maximum(
                    np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            except Exception:  # the page says there is no map; the server keeps serving
                log.exception("the collection's map could not be computed")
            with self._lock:
                if not self._again:
                    return
                self._again = False
            # Writes kept coming: wait as long as the map took before computing it again, so that a stream of
            # writes costs the server at most half a core for its map.
            time.sleep(time.monotonic() - started)

    def places(self, ids: list[str]) -> np.ndarray:
        """Places on the map of stored points: their own when sampled, else where their nearest sampled points are."""
        m = self._map
        index = {pid: i for i, pid in enumerate(m["ids"])}
        xy = np.asarray(m["xy"], dtype=np.float64).reshape(-1, 2)
        out = np.full((len(ids), 2), np.nan)
        missing = [i for i, pid in enumerate(ids) if pid not in index]
        for i, pid in enumerate(ids):
            if pid in index:
                out[i] = xy[index[pid]]
        if missing and len(xy):
            found = {h.id: h.float_vector for h in self.service.require_store().retrieve(
                [ids[i] for i in missing], with_vectors=["float"])}
            have = [i for i in missing if ids[i] in found]
            if have:
                out[have] = atlas.locate(np.stack([found[ids[i]] for i in have]), self._vectors, xy)
        return out

    def point_at(self, px: float, py: float) -> int | None:
        """The sampled point nearest a pixel of the drawn map (None: the click was off the map or it is empty)."""
        m = self._map
        if not m or not m["ids"]:
            return None
        x, y = from_pixels(px, py)
        if not (-MARGIN <= x <= 1 + MARGIN and -MARGIN <= y <= 1 + MARGIN):
            return None
        xy = np.asarray(m["xy"], dtype=np.float64)
        return int(np.argmin(((xy - (x, y)) ** 2).sum(1)))


def to_pixels(xy) -> np.ndarray:
    """Map coordinates ([0, 1]², y up) to pixels of the drawn picture (y down)."""
    left, top, width, height = AXES
    xy = np.asarray(xy, dtype=np.float64)
    scale = 1 + 2 * MARGIN
    return np.c_[left + (xy[:, 0] + MARGIN) / scale * width, top + (1 + MARGIN - xy[:, 1]) / scale * height]


def from_pixels(px: float, py: float) -> tuple[float, float]:
    left, top, width, height = AXES
    scale = 1 + 2 * MARGIN
    return (px - left) / width * scale - MARGIN, 1 + MARGIN - (py - top) / height * scale


def draw(m: dict, marks: dict[str, np.ndarray] | None = None, title: str = "") -> str:
    """The map as a PNG file in Gradio's cache: the sample coloured by label (legend below), and `marks` — name →
    places — drawn over it (the query as a star, results as rings)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = FIGURE
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    left, top, aw, ah = AXES
    ax = fig.add_axes((left / w, 1 - (top + ah) / h, aw / w, ah / h))
    ax.set_xlim(-MARGIN, 1 + MARGIN)
    ax.set_ylim(-MARGIN, 1 + MARGIN)
    ax.set_xticks([])
    ax.set_yticks([])
    xy = np.asarray(m["xy"], dtype=np.float64).reshape(-1, 2)
    labels = [str(lab) for lab in m["labels"]]
    names = sorted(set(labels))
    colours = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
    for n, name in enumerate(names):
        sel = np.array([lab == name for lab in labels])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colours(n % colours.N), label=name, linewidths=0)
    for name, places in (marks or {}).items():
        places = np.asarray(places).reshape(-1, 2)
        if name == "query":
            ax.scatter(places[:, 0], places[:, 1], s=260, marker="*", color="black", edgecolors="white", label=name)
        else:
            ax.scatter(places[:, 0], places[:, 1], s=70, facecolors="none", edgecolors="black", linewidths=1.6,
                       label=name)
    if title:
        ax.set_title(title, fontsize=10, loc="left", y=1.0, pad=-14)
    # Large: at phone width the picture is shown at under half its size.
    fig.legend(loc="lower center", ncol=min(3, len(names) + len(marks or {})), fontsize=20, frameon=False,
               markerscale=2.2, handletextpad=0.2, columnspacing=1.0, bbox_to_anchor=(0.5, 0.0))
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    data = png.getvalue()
    path = THUMBS / f"map-{hashlib.sha256(data).hexdigest()[:20]}.{MAP_VERSION}.png"
    if not path.exists():
        THUMBS.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    return str(path)
