"""The collection grows and shrinks: uploads stored as files beside their points, added, deleted, and what a
crash left half done finished (`reconcile`)."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from indexer.embedder import Embedder, Embeddings
from indexer.sources import safe_path
from indexer.store import Store, point_id
from training.data import UNLABELLED
from training.images import BadImage, open_image, sha256
from training.prepare import ImageProfile

log = logging.getLogger(__name__)


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
        label = (label or "").strip() or UNLABELLED
        rel = store_file(data, image_dir, fmt, label)
        payload = {"label": label, "label_id": embedder.label_id(label), "source": {"file": rel}, "sha256": digest}
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


def delete_images(store: Store, image_dir: Path, ids: list[str]) -> list[str]:
    """Delete the points of these ids that exist, and their stored files: each file marked first, the point deleted,
    then the file removed, so a crash in between is finished at the next start (`reconcile`). Returns the ids
    deleted."""
    found = store.retrieve(ids) if ids else []
    files = [(h.payload.get("source") or {}).get("file") for h in found]
    marked = mark_deleting(image_dir, [f for f in files if f])
    if found:
        store.delete([h.id for h in found])
    drop_marked(marked)
    return [h.id for h in found]
