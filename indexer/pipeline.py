"""Indexing as clip-retrieval shapes it: a reader (batches of images), a mapper (batch → embeddings) and a
writer (embeddings → Qdrant), composed by a runner that times each stage, so its figures say where time goes.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Image as ImageFeature
from tqdm.auto import tqdm

from indexer.calibration import collection_figures
from indexer.embedder import Embedder
from indexer.store import Store, StoreError, point_id
from training.config import preparation_enabled
from training.data import label_names, load_image_dataset
from training.images import BadImage, open_image, sha256
from training.prepare import ImageProfile, profile_of

log = logging.getLogger(__name__)


@dataclass
class Batch:
    ids: list[str]
    images: list
    payloads: list[dict]
    rows: int = 0  # dataset rows this batch covers, including those skipped (already stored, or bad)


@dataclass
class Report:
    indexed: int = 0
    skipped_existing: int = 0
    bad: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def as_dict(self) -> dict:
        total = sum(self.seconds.values())
        return {
            "indexed": self.indexed,
            "skipped_existing": self.skipped_existing,
            "bad": len(self.bad),
            "bad_items": self.bad[:20],
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "share": {k: round(v / total, 3) for k, v in self.seconds.items()} if total else {},
        }


def sources_of(spec: str, split: str, start: int, stop: int, paths: list[str] | None = None,
               ) -> tuple[list[dict], list[str]]:
    """(sources, point ids) of rows start:stop of a split, whose file `paths` a folder gives. A folder's images
    are named by their file (so a picture added to the folder leaves every other id as it was); a dataset's by
    split and row."""
    if paths is not None:
        # "filename", not "path": gradio_client takes any dict with a "path" in an answer for a file to download
        return ([{"dataset": spec, "split": split, "filename": p} for p in paths],
                [point_id({"dataset": spec, "filename": p}) for p in paths])
    sources = [{"dataset": spec, "split": split, "row": i} for i in range(start, stop)]
    return sources, [point_id(s) for s in sources]


def dataset_reader(
    ds, spec: str, splits: tuple[str, ...], batch_size: int, store: Store, report: Report, limit: int | None = None
) -> Iterator[Batch]:
    """Rows of `ds` (loaded from `spec`) not yet in the collection, decoded from their stored bytes; bad rows are
    reported, not fatal."""
    names = label_names(ds)
    for split in splits:
        table = ds[split].cast_column("image", ImageFeature(decode=False))
        n = len(table) if limit is None else min(limit, len(table))
        for start in range(0, n, batch_size):
            t0 = time.perf_counter()
            rows = table[start : min(start + batch_size, n)]
            sources, ids = sources_of(spec, split, start, min(start + batch_size, n), rows.get("path"))
            # Resuming after an interruption: what is already stored is not embedded again.
            done = {h.id for h in store.retrieve(ids)}
            report.skipped_existing += len(done)
            batch = Batch([], [], [], rows=len(ids))
            for pid, src, img, label in zip(ids, sources, rows["image"], rows["label"], strict=True):
                if pid in done:
                    continue
                data = img["bytes"] if img["bytes"] is not None else Path(img["path"]).read_bytes()
                try:
                    image = open_image(data)
                except BadImage as e:
                    report.bad.append({"source": src, "error": str(e)})
                    continue
                batch.ids.append(pid)
                batch.images.append(image)
                batch.payloads.append(
                    {"label": names[label], "label_id": int(label), "source": src, "sha256": sha256(data)}
                )
            report.seconds["read"] += time.perf_counter() - t0
            yield batch


def run(batches: Iterator[Batch], embedder: Embedder, store: Store, report: Report, profile: ImageProfile | None,
        total: int | None = None) -> Report:
    """reader → prepare + preprocess (like the collection's images, `profile`) → embed → upsert, timing each stage."""
    bar = tqdm(total=total, unit="img", desc="indexing")
    for batch in batches:
        if batch.ids:
            t0 = time.perf_counter()
            pixels, prepared = embedder.preprocess(batch.images, profile)
            t1 = time.perf_counter()
            emb = embedder.embed_pixels(pixels, prepared)
            t2 = time.perf_counter()
            store.upsert(batch.ids, emb.floats, emb.codes, batch.payloads)
            t3 = time.perf_counter()
            report.seconds["preprocess"] += t1 - t0
            report.seconds["embed"] += t2 - t1
            report.seconds["upsert"] += t3 - t2
            report.indexed += len(batch.ids)
        bar.update(batch.rows or len(batch.ids))
    bar.close()
    t0 = time.perf_counter()
    store.flush()
    report.seconds["flush"] += time.perf_counter() - t0
    return report


def build_index(
    embedder: Embedder,
    store: Store,
    dataset: str,
    splits: tuple[str, ...] = ("train", "test"),
    batch_size: int = 256,
    limit: int | None = None,
    recreate: bool = False,
    image_dir: Path = Path("."),
) -> Report:
    """Index `dataset`'s splits into `store`; a second run adds nothing, an interrupted one resumes.

    A new collection records its image profile, measured on its first split the way training measures a training
    set's: every image, stored and searched alike, is prepared to look like those; and, after new images, how alike
    the images are to their nearest (indexer.calibration) and the raw-pixel floor (indexer.floor; `image_dir`: where
    stored uploads are)."""
    ds = load_image_dataset(dataset)
    meta = dict(embedder.meta, dataset=dataset)
    by_file = "path" in ds[splits[0]].column_names
    if recreate or not store.meta:  # a new collection: its profile, or None when indexed as is (PREPARE=0)
        meta["image_profile"] = profile_of(ds[splits[0]]).as_dict() if preparation_enabled() else None
        meta["sources"] = "filename" if by_file else "row"
    elif by_file and store.meta.get("sources") != "filename":
        raise StoreError(f"collection {store.collection!r} was indexed before a folder's images were named by their "
                         "file (by row: adding to it now would index every picture again under new ids); rebuild it "
                         "once with --recreate")
    existing = store.ensure(meta, recreate=recreate)
    profile, _ = embedder.profile_for(existing)
    report = Report()
    report.bad += [{"source": {"dataset": dataset, "file": b["path"]}, "error": b["error"]}
                   for b in getattr(ds, "skipped", [])]  # a folder's unreadable files, by path, left out on loading
    total = sum(min(len(ds[s]), limit or len(ds[s])) for s in splits)
    run(dataset_reader(ds, dataset, splits, batch_size, store, report, limit), embedder, store, report, profile, total)
    if report.indexed:
        # Build the HNSW index now, not at the first query (what it costs and saves: bench/indexing.py,
        # bench/search.py).
        t0 = time.perf_counter()
        store.optimize()
        report.seconds["optimize"] += time.perf_counter() - t0
    if report.indexed or "calibration" not in store.meta:  # new images, or a collection from before calibration
        t0 = time.perf_counter()
        store.update_meta(collection_figures(store, image_dir))
        report.seconds["calibrate"] += time.perf_counter() - t0
    return report
