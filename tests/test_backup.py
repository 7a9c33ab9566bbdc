"""Backups: `python -m indexer snapshot` then `restore` gives a collection that answers exactly as before."""

import io
import json
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from indexer.__main__ import main as indexer_cli
from indexer.ranking import METRICS
from tests.conftest import draw_shape


def _png(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _answers(service, queries: list[bytes]) -> list:
    """Every metric's first page for every query: ids, scores, labels, sources (and the thumbnails' images)."""
    out = []
    for data in queries:
        for metric in METRICS:
            results, _, _ = service.search(data, metric, 8)
            out.append([(r["id"], r["score"], r["label"], json.dumps(r["source"])) for r in results])
            out.append([service.image_of(r).tobytes() for r in results if "file" in r["source"]])
    return out


def test_snapshot_and_restore_answer_every_metric_identically(indexed, tiny_model, tmp_path, capsys):
    from app.service import SearchService, Settings

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    rng = random.Random(5)
    uploads = []
    for i in range(6):
        path = tmp_path / f"up{i}.png"
        draw_shape(rng.choice(["circle", "square"]), rng, size=48).save(path)
        uploads.append(path.read_bytes())
    settings = Settings(model_dir=str(tiny_model), collection=name, qdrant=str(tmp_path / "q"),
                        data_dir=str(tmp_path / "data"))
    service = SearchService(settings)
    service.add([(u, "mine") for u in uploads])
    queries = uploads[:3] + [_png(draw_shape("triangle", rng))]
    before, count = _answers(service, queries), service.require_store().count()
    # the app has the embedded collection open: the snapshot says what to stop
    assert indexer_cli(["snapshot", "--collection", name, "--qdrant", str(tmp_path / "q"), "--data-dir",
                        str(tmp_path / "data"), "--out", str(tmp_path / "b.tar")]) == 2
    assert "stop the app" in capsys.readouterr().err and not (tmp_path / "b.tar").exists()
    service.close()

    assert indexer_cli(["snapshot", "--collection", name, "--qdrant", str(tmp_path / "q"), "--data-dir",
                        str(tmp_path / "data"), "--out", str(tmp_path / "b.tar")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["points"] == count and report["engine"] == "embedded"

    # 1. into a new place: another folder, another data dir
    assert indexer_cli(["restore", "--from", str(tmp_path / "b.tar"), "--collection", name, "--qdrant",
                        str(tmp_path / "q2"), "--data-dir", str(tmp_path / "data2")]) == 0
    assert json.loads(capsys.readouterr().out)["images_restored"] == 12  # 6 pictures and their labels
    moved = SearchService(Settings(model_dir=str(tiny_model), collection=name, qdrant=str(tmp_path / "q2"),
                                   data_dir=str(tmp_path / "data2")))
    try:
        assert moved.require_store().count() == count and _answers(moved, queries) == before
    finally:
        moved.close()

    # 2. over the original after it changed: refused without --force, then the old answers are back
    service = SearchService(settings)
    service.delete([service.search(uploads[0], "cosine", 1)[0][0]["id"]])
    service.add([(_png(draw_shape("circle", rng)), "later")])
    assert _answers(service, queries) != before
    service.close()
    assert indexer_cli(["restore", "--from", str(tmp_path / "b.tar"), "--collection", name, "--qdrant",
                        str(tmp_path / "q"), "--data-dir", str(tmp_path / "data")]) == 2
    assert "--force" in capsys.readouterr().err
    assert indexer_cli(["restore", "--from", str(tmp_path / "b.tar"), "--collection", name, "--qdrant",
                        str(tmp_path / "q"), "--data-dir", str(tmp_path / "data"), "--force"]) == 0
    service = SearchService(settings)
    try:
        assert service.require_store().count() == count and _answers(service, queries) == before
        assert service.reconciled["indexed"] == 0  # the later upload was set aside, not indexed again
    finally:
        service.close()
    aside = list(tmp_path.glob("data/images.before-restore-*/*/*"))
    assert len(aside) == 2  # the later picture and its label, kept


def test_the_rest_path_snapshots_through_the_snapshot_api(embedder_for_backup, shapes_dir, tmp_path, capsys,
                                                          rest_standin, monkeypatch):
    """The store's requests to a server's snapshot API, answered by the REST stand-in (local mode behind REST, whose
    snapshot content is its own, not a Qdrant server's): a snapshot is made, downloaded and deleted, then uploaded
    as another collection, which answers every metric identically."""
    from app.service import SearchService, Settings
    from indexer.factory import open_store
    from indexer.pipeline import build_index

    model, embedder = embedder_for_backup
    monkeypatch.setenv("QDRANT_API_KEY", rest_standin.api_key)
    store = open_store("srv", rest_standin.url)
    build_index(embedder, store, str(shapes_dir), splits=("train",))
    store.close()
    rng = random.Random(9)
    uploads = [_png(draw_shape("square", rng, size=40)) for _ in range(3)]

    def service(collection, data):
        return SearchService(Settings(model_dir=str(model), collection=collection, qdrant=rest_standin.url,
                                      data_dir=str(tmp_path / data)))

    s = service("srv", "data")
    s.add([(u, "mine") for u in uploads])
    before = _answers(s, uploads)
    s.close()
    assert indexer_cli(["snapshot", "--collection", "srv", "--qdrant", rest_standin.url, "--data-dir",
                        str(tmp_path / "data"), "--out", str(tmp_path / "s.tar")]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "server"
    assert "POST /collections/srv/snapshots" in rest_standin.requests and not rest_standin.snapshots  # deleted
    assert indexer_cli(["restore", "--from", str(tmp_path / "s.tar"), "--collection", "srv2", "--qdrant",
                        rest_standin.url, "--data-dir", str(tmp_path / "data2")]) == 0
    assert "POST /collections/srv2/snapshots/upload" in rest_standin.requests
    s = service("srv2", "data2")
    try:
        assert _answers(s, uploads) == before
    finally:
        s.close()
    # an embedded snapshot cannot go to a server, and the other way round: said, not attempted
    assert indexer_cli(["restore", "--from", str(tmp_path / "s.tar"), "--collection", "x", "--qdrant",
                        str(tmp_path / "folder")]) == 2
    assert "restore it to a server" in capsys.readouterr().err


@pytest.fixture
def embedder_for_backup(tiny_model):
    from indexer.embedder import Embedder

    return tiny_model, Embedder(tiny_model)


def _snapshot_of_shapes(indexed, tmp_path, capsys) -> tuple[Path, Path]:
    """(snapshot file, its collection's folder) of an own copy of the shapes collection."""
    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    assert indexer_cli(["snapshot", "--collection", name, "--qdrant", str(tmp_path / "q"), "--data-dir",
                        str(tmp_path / "data"), "--out", str(tmp_path / "b.tar")]) == 0
    capsys.readouterr()
    return tmp_path / "b.tar", tmp_path / "q" / name


def test_a_snapshot_holds_what_the_collection_holds_not_its_preallocated_files(indexed, tmp_path, capsys):
    archive, folder = _snapshot_of_shapes(indexed, tmp_path, capsys)
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"collection folder {on_disk:,} bytes, snapshot {archive.stat().st_size:,} bytes")
    assert archive.stat().st_size < on_disk / 20


def _with_member(archive: Path, out: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """`archive` with one more member, as someone who passes snapshots around could add it."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        dst.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data) if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member, why", [
    (lambda out: _member(f"images/../../{out.name}", data=b"owned"), "climbs out of its folder"),
    (lambda out: _member(str(out), data=b"owned"), "has an absolute name"),
    (lambda out: _member("images/ab/evil.png", tarfile.SYMTYPE, linkname=str(out)), "is a link"),
    (lambda out: _member("collection/evil", tarfile.LNKTYPE, linkname=str(out)), "is a link"),
    (lambda out: _member("images/ab/dev", tarfile.CHRTYPE), "is a device or FIFO"),
    (lambda out: _member("elsewhere.txt", data=b"owned"), "is not part of a snapshot's layout"),
], ids=["dot-dot", "absolute", "symlink", "hardlink", "device", "off-layout"])
def test_restore_refuses_a_snapshot_with_a_member_that_writes_outside_and_applies_nothing(
        indexed, tmp_path, capsys, member, why):
    archive, _ = _snapshot_of_shapes(indexed, tmp_path, capsys)
    outside = tmp_path / "outside.txt"
    info = member(outside)
    hostile = _with_member(archive, tmp_path / "hostile.tar", info, b"owned" if info.isfile() else b"")
    data = tmp_path / "restore" / "data"
    code = indexer_cli(["restore", "--from", str(hostile), "--collection", "restored", "--qdrant",
                        str(tmp_path / "restore" / "q"), "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and f"its member {info.name!r} {why}" in err and "nothing was restored" in err
    assert not outside.exists() and not (tmp_path / "elsewhere.txt").exists()
    assert not (tmp_path / "restore").exists()  # no collection, no images: nothing of the restore applied
    # the snapshot as written restores
    assert indexer_cli(["restore", "--from", str(archive), "--collection", "restored", "--qdrant",
                        str(tmp_path / "restore" / "q"), "--data-dir", str(data)]) == 0
