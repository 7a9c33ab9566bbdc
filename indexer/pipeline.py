"""Indexing as clip-retrieval shapes it: a reader (batches of images), a mapper (batch → embeddings) and a
writer (embeddings → Qdrant), composed by a runner that times each stage, so its figures say where time goes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Image as ImageFeature
from tqdm.auto import tqdm

from indexer.embedder import Embedder, Embeddings
from indexer.images import BadImage, open_image, sha256
from indexer.store import Store, point_id
from training.data import label_names, load_image_dataset


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
            sources = [{"dataset": spec, "split": split, "row": start + i} for i in range(len(rows["label"]))]
            ids = [point_id(s) for s in sources]
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


def run(batches: Iterator[Batch], embedder: Embedder, store: Store, report: Report, total: int | None = None) -> Report:
    """reader → preprocess → embed → upsert, timing each stage."""
    bar = tqdm(total=total, unit="img", desc="indexing")
    for batch in batches:
        if batch.ids:
            t0 = time.perf_counter()
            pixels = embedder.preprocess(batch.images)
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
    """Index `dataset`'s splits into `store`; a second run adds nothing, an interrupted one resumes."""
    store.ensure(dict(embedder.meta, dataset=dataset), recreate=recreate)
    report = Report()
    ds = load_image_dataset(dataset)
    total = sum(min(len(ds[s]), limit or len(ds[s])) for s in splits)
    run(dataset_reader(ds, dataset, splits, batch_size, store, report, limit), embedder, store, report, total)
    if report.indexed:
        # Build the HNSW index now, not at the first query (measured at 70k: 6 s; cosine p50 2.5 → 0.75 ms,
        # recall@10 0.999 against the exact scan; bench/search.py).
        t0 = time.perf_counter()
        store.optimize()
        report.seconds["optimize"] += time.perf_counter() - t0
    return report


# --- single images: uploads into the collection -----------------------------------------------------------
def store_file(data: bytes, image_dir: Path, fmt: str) -> str:
    """Content-addressed: the same bytes are stored once, at <image_dir>/<sha[:2]>/<sha>.<ext>."""
    digest = sha256(data)
    rel = f"{digest[:2]}/{digest}.{fmt}"
    path = image_dir / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return rel


def add_images(
    embedder: Embedder, store: Store, items: list[tuple[bytes, str | None]], image_dir: Path
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
        rel = store_file(data, image_dir, fmt)
        label = (label or "").strip() or "unlabelled"
        label_id = embedder.labels.index(label) if label in embedder.labels else -1
        payload = {"label": label, "label_id": label_id, "source": {"file": rel}, "sha256": digest}
        pid = point_id({"sha256": digest})
        images.append(image)
        ids.append(pid)
        payloads.append(payload)
        added.append({"id": pid, **payload})
    if images:
        emb: Embeddings = embedder.embed(images)
        store.upsert(ids, emb.floats, emb.codes, payloads)
        store.flush()
    return added, errors

