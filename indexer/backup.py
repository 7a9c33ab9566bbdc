"""A collection and its stored images in one file, and back: `python -m indexer snapshot` / `restore`.

The file is a gzip'd tar (the embedded engine preallocates its files, mostly zeros: compressed, a snapshot is the
size of what the collection holds): `manifest.json` (what it holds: collection, engine, point count, the
collection's meta), then the collection — the embedded engine's folder as it is on disk, or a Qdrant server's
own snapshot — then `images/`, the uploads stored under <data-dir>/images (content-addressed files and their labels).

Consistency: the embedded engine is opened by one process at a time, so a snapshot of it runs while nothing else
has it open (stop the app first; the command says so if it is running) and copies a flushed, quiet folder. A
server snapshot is Qdrant's own (POST /collections/{c}/snapshots), taken while the server serves; uploads added
after it was taken and before the images are copied are in the file without their points, and a restore indexes
them (indexer.uploads.reconcile runs when the app opens the collection). A restore moves stored images the
snapshot does not hold (added after it) to <data-dir>/images.before-restore-<time>/, so the restored collection
answers as it did when the snapshot was taken, and nothing is deleted.

A snapshot is a file people download and pass around: before anything is applied, every member is checked
(`check_members`). A member whose name is absolute or climbs out with `..`, a link, a device or a FIFO, or a name
outside the snapshot's layout refuses the whole restore, with its name; nothing of it is applied.
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path, PurePosixPath

from indexer.factory import open_store
from indexer.sources import safe_path
from indexer.store import Store, StoreError, add_bytes
from indexer.uploads import DELETING_SUFFIX, write_atomically

FORMAT = 1


def _skip_transient(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Files that are no part of what a snapshot holds: locks, half-written temp files, files being deleted."""
    name = info.name.rsplit("/", 1)[-1]
    return None if name == ".lock" or name.endswith((".tmp", DELETING_SUFFIX)) else info


def _open(collection: str, location: str | None) -> Store:
    try:
        return open_store(collection, location)
    except StoreError as e:
        raise StoreError(f"{e} (the embedded engine is opened by one process at a time: stop the app, "
                         "`make serve` / `python -m app`, for this, then start it again)") from None


def snapshot(collection: str, location: str | None, image_dir: Path, out: Path) -> dict:
    """Write the collection and its stored images to `out` (a .tar, written whole or not at all)."""
    store = _open(collection, location)
    try:
        return _snapshot(store, image_dir, out)
    finally:
        store.close()


def _snapshot(store: Store, image_dir: Path, out: Path) -> dict:
    if not store.meta:
        raise StoreError(f"collection {store.collection!r} does not exist: nothing to back up")
    store.flush()
    manifest = {"format": FORMAT, "collection": store.collection, "points": store.count(), "meta": store.meta,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "engine": store.engine}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    # compresslevel 1, the fastest: preallocated files are mostly zeros, which any level compresses to almost nothing.
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
        store.write_snapshot(tar, skip=_skip_transient)
        if Path(image_dir).is_dir():
            tar.add(image_dir, arcname="images", filter=_skip_transient)
    tmp.replace(out)
    return dict(manifest, file=str(out), bytes=out.stat().st_size)


def restore(archive: Path, collection: str, location: str | None, image_dir: Path, force: bool = False) -> dict:
    """Put a snapshot back as `collection` at `location`, and its images into `image_dir`. An existing collection
    is replaced only with `force` (and only when no other process has it open)."""
    with tarfile.open(archive) as tar:  # plain or compressed, detected
        check_members(tar, archive)
        manifest = json.loads(tar.extractfile("manifest.json").read())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{archive} is not a snapshot this version can restore (format {manifest.get('format')})")
        store = _open(collection, location)
        try:
            if store.meta and not force:
                raise StoreError(f"collection {collection!r} exists; restore into another (--collection) or replace "
                                 "it with --force")
            if manifest["engine"] != store.engine:
                raise ValueError(f"this snapshot is of {ENGINES.get(manifest['engine'], manifest['engine'])}: "
                                 f"restore it to {WHERE.get(manifest['engine'], 'the same kind of engine')}")
            store.read_snapshot(tar)
            points = store.count()
        finally:
            store.close()
        images = [m for m in tar.getmembers() if m.name.startswith("images/") and m.isfile()]
        restored, set_aside = 0, _set_aside(Path(image_dir), {m.name.removeprefix("images/") for m in images})
        for member in images:
            target = safe_path(Path(image_dir), member.name.removeprefix("images/"))
            if not target.exists():  # content-addressed: a file of that name already holds those bytes
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(target, tar.extractfile(member).read())
                restored += 1
    if points != manifest["points"]:
        raise StoreError(f"restored {points} points, but the snapshot holds {manifest['points']}")
    return {"collection": collection, "points": points, "images_restored": restored, "from": str(archive),
            "created": manifest["created"], "images_set_aside": set_aside}


ENGINES = {"embedded": "the embedded engine", "server": "a Qdrant server"}
WHERE = {"embedded": "a folder (--qdrant DIR)", "server": "a server (--qdrant URL)"}
LAYOUT = ("manifest.json", "collection.snapshot", "collection", "images")  # what a snapshot's names start with


def check_members(tar: tarfile.TarFile, archive: Path | str) -> None:
    """Refuse (ValueError, nothing applied) a snapshot with a member that could write outside the folders a
    restore writes: an absolute name or one with `..`, a symbolic or hard link, a device or FIFO, or a name outside
    the snapshot's layout."""
    for m in tar.getmembers():
        name = m.name
        parts = PurePosixPath(name).parts
        why = None
        if not parts or name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or ":" in parts[0]:
            why = "has an absolute name"
        elif ".." in parts:
            why = "climbs out of its folder (`..`)"
        elif "\\" in name:
            why = "has a backslash in its name (a Windows path)"
        elif m.issym() or m.islnk():
            why = f"is a link (to {m.linkname!r})"
        elif not (m.isfile() or m.isdir()):
            why = "is a device or FIFO, not a file"
        elif parts[0] not in LAYOUT or (parts[0] in ("manifest.json", "collection.snapshot") and len(parts) > 1):
            why = "is not part of a snapshot's layout (manifest.json, collection/, collection.snapshot, images/)"
        if why:
            raise ValueError(f"{archive} is refused: its member {name!r} {why}; nothing was restored. Restore only "
                             "snapshots written by `python -m indexer snapshot`")
    if "manifest.json" not in tar.getnames():
        raise ValueError(f"{archive} has no manifest.json: it is not a snapshot written by `python -m indexer "
                         "snapshot`; nothing was restored")


def _set_aside(image_dir: Path, kept: set[str]) -> dict | None:
    """Stored images the snapshot does not hold (added after it) are moved out of the way, not deleted: the
    restored collection answers as it did, and nothing is lost."""
    extra = [p for p in image_dir.glob("*/*") if p.is_file() and p.relative_to(image_dir).as_posix() not in kept]
    if not extra:
        return None
    aside = image_dir.with_name(f"{image_dir.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
    for path in extra:
        target = aside / path.relative_to(image_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    return {"files": len(extra), "to": str(aside)}
