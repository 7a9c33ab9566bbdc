"""Indexing as clip-retrieval shapes it: a reader (batches of images), a mapper (batch → embeddings) and a
writer (embeddings → Qdrant), composed by a runner that times each stage, so its figures say where time goes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Image as ImageFeature
from tqdm.auto import tqdm

from indexer.config import preparation_enabled
from indexer.embedder import Embedder, Embeddings
from indexer.sources import safe_path
from indexer.store import Store, StoreError, point_id
from training.data import label_names, load_image_dataset
from training.images import BadImage, ImageProfile, open_image, profile_of, sha256

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
            pixels, _ = embedder.preprocess(batch.images, profile)
            t1 = time.perf_counter()
            emb = embedder.embed_pixels(pixels)
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
) -> Report:
    """Index `dataset`'s splits into `store`; a second run adds nothing, an interrupted one resumes.

    A new collection records its image profile, measured on its first split the way training measures a training
    set's: every image, stored and searched alike, is prepared to look like those."""
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
        store.update_meta({"calibration": calibrate(store)})
        report.seconds["calibrate"] += time.perf_counter() - t0
    return report


CALIBRATION_SAMPLE = 500  # stored images whose nearest neighbours calibrate "unlike the collection"
UNLIKE_PERCENTILE = 1  # a query is unlike the collection when its nearest image is less alike than this share's


def calibrate(store: Store, sample: int = CALIBRATION_SAMPLE) -> dict:
    """How alike the collection's own images are to their nearest neighbour (cosine of the float vectors), over a
    sample: a query whose nearest image scores below the low percentile is unlike anything stored."""
    hits, _ = store.scroll(limit=sample, with_vectors=True)
    nearest = []
    for h in hits:
        others = [n for n in store.search("cosine", h.float_vector, np.zeros(1), k=2) if n.id != h.id]
        if others:
            nearest.append(others[0].score)
    if not nearest:
        return {}
    return {"nearest_cosine": {f"p{q:02d}": round(float(np.percentile(nearest, q)), 4)
                               for q in (UNLIKE_PERCENTILE, 5, 50)}, "sample": len(nearest)}


def unlike_collection(nearest_cosine: float | None, meta: dict) -> dict:
    """Whether a query is unlike the collection: its nearest stored image (cosine) is less alike than all but
    UNLIKE_PERCENTILE % of the collection's own images are to theirs (calibrated at indexing)."""
    floor = ((meta.get("calibration") or {}).get("nearest_cosine") or {}).get(f"p{UNLIKE_PERCENTILE:02d}")
    if nearest_cosine is not None:
        nearest_cosine = round(float(nearest_cosine), 4)  # as recorded: the floor has four decimals too
    if floor is None or nearest_cosine is None:
        return {"unlike": None, "nearest_cosine": nearest_cosine, "calibrated_floor": floor}
    return {"unlike": nearest_cosine < floor, "nearest_cosine": nearest_cosine, "calibrated_floor": floor}


# --- single images: uploads into the collection -----------------------------------------------------------
# Stored uploads live at <image_dir>/<sha[:2]>/<sha>.<ext>, one point each (id: point_id({"sha256": sha})), with
# <sha>.label beside them (the label it was added with). The order of each write makes a crash at any moment
# recoverable by `reconcile`: a file is written (temp + rename) before its point, and marked <file>.deleting before
# its point is deleted.
LABEL_SUFFIX, DELETING_SUFFIX = ".label", ".deleting"


def image_dir_of(data_dir: str | Path) -> Path:
    """Where a data dir keeps its stored uploads (the app's, the backups')."""
    return Path(data_dir) / "images"


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all (a temp file beside it, renamed): a reader never sees half a file,
    and a crash leaves at most a `.tmp` (removed by `reconcile`)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def store_file(data: bytes, image_dir: Path, fmt: str, label: str | None = None) -> str:
    """Content-addressed: the same bytes are stored once, at <image_dir>/<sha[:2]>/<sha>.<ext>; `label` beside."""
    digest = sha256(data)
    rel = f"{digest[:2]}/{digest}.{fmt}"
    path = image_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_atomically(path, data)
    write_atomically(path.with_name(digest + LABEL_SUFFIX), (label or "").encode())
    return rel


def mark_deleting(image_dir: Path, rels: list[str]) -> list[Path]:
    """Step 1 of deleting stored uploads: their files renamed <file>.deleting (so a crash never brings them back)."""
    marked = []
    for rel in rels:
        path = safe_path(image_dir, rel)
        if path.exists():
            marked.append(path.replace(path.with_name(path.name + DELETING_SUFFIX)))
    return marked


def drop_marked(marked: list[Path]) -> None:
    """Step 3 (after the points are gone): the marked files and their labels removed."""
    for path in marked:
        path.unlink(missing_ok=True)
        path.with_name(path.name.split(".")[0] + LABEL_SUFFIX).unlink(missing_ok=True)


def reconcile(embedder: Embedder, store: Store, image_dir: Path, profile: ImageProfile | None) -> dict:
    """After a crash: finish what was half done between the stored files and the points.
    - a file marked .deleting: its point is deleted (if still there) and the file removed;
    - a stored file without its point (killed between the two writes of an add): indexed, with its label;
    - a left-over temp file: removed;
    - a point whose file is missing (removed by hand, or a lost disk): reported, not deleted.
    Returns the counts and the ids of points without files."""
    report = {"deleted": 0, "indexed": 0, "temp_removed": 0, "points_without_file": []}
    if not image_dir.is_dir():
        return report
    marked, stored = [], {}
    for path in image_dir.glob("*/*"):
        if path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
            report["temp_removed"] += 1
        elif path.name.endswith(DELETING_SUFFIX):
            marked.append(path)
        elif not path.name.endswith(LABEL_SUFFIX):
            stored[point_id({"sha256": path.name.split(".")[0]})] = path
    if marked:
        store.delete([point_id({"sha256": p.name.split(".")[0]}) for p in marked])
        drop_marked(marked)
        report["deleted"] = len(marked)
    ids = list(stored)
    present = set()
    for i in range(0, len(ids), 1000):
        present |= {h.id for h in store.retrieve(ids[i:i + 1000])}
    missing = [stored[i] for i in ids if i not in present]
    if missing:
        items = []
        for path in missing:
            label_file = path.with_name(path.name.split(".")[0] + LABEL_SUFFIX)
            label = label_file.read_text() if label_file.exists() else None
            items.append((path.read_bytes(), label or None))
        added, errors = add_images(embedder, store, items, image_dir, profile)
        report["indexed"] = len(added)
        for path, error in zip(missing, errors, strict=False):
            log.warning("reconcile: %s could not be indexed: %s", path, error)
    report["points_without_file"] = [h.id for h in store.file_points()
                                     if not (image_dir / str(h.payload["source"]["file"])).exists()]
    if any(report[k] for k in ("deleted", "indexed", "temp_removed")) or report["points_without_file"]:
        log.warning("reconciled the stored images with the collection: %s", json.dumps(report))
    return report


def add_images(
    embedder: Embedder, store: Store, items: list[tuple[bytes, str | None]], image_dir: Path,
    profile: ImageProfile | None,
) -> tuple[list[dict], list[str]]:
    """Decode, store, embed and upsert uploaded images. Returns (added, errors); bad items are skipped."""
    added, errors, images, ids, payloads = [], [], [], [], []
    for n, (data, label) in enumerate(items):
        try:
            image = open_image(data)
        except BadImage as e:
            errors.append(f"image {n + 1}: {e}")
            continue
        fmt = (image.format or "png").lower()
        fmt = {"jpeg": "jpg", "mpo": "jpg"}.get(fmt, fmt)
        digest = sha256(data)
        label = (label or "").strip() or "unlabelled"
        rel = store_file(data, image_dir, fmt, label)
        label_id = embedder.labels.index(label) if label in embedder.labels else -1
        payload = {"label": label, "label_id": label_id, "source": {"file": rel}, "sha256": digest}
        pid = point_id({"sha256": digest})
        images.append(image)
        ids.append(pid)
        payloads.append(payload)
        added.append({"id": pid, **payload})
    if images:
        emb: Embeddings = embedder.embed(images, profile)
        store.upsert(ids, emb.floats, emb.codes, payloads)
        store.flush()
    return added, errors

