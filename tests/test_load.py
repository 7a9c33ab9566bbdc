"""16 concurrent clients × 50 searches through the Gradio API: no errors, the documented shape, no leak."""

import threading

import pytest
from gradio_client import Client, handle_file

from indexer.ranking import METRICS

pytestmark = pytest.mark.slow


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def app_process(indexed, tiny_model, tmp_path):
    """The app as its own process (python -m app), so its memory is measured alone."""
    import shutil

    from tests.conftest import app_process_on

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    proc, url = app_process_on(tiny_model, tmp_path / "q", name, tmp_path / "data")
    yield url, proc.pid
    proc.terminate()
    proc.wait(timeout=30)


def test_sixteen_clients_fifty_searches_each(app_process, shapes_dir):
    url, pid = app_process
    files = [str(p) for kind in ("circle", "square", "triangle") for p in sorted((shapes_dir / kind).glob("*"))[:4]]
    errors, shapes, done = [], [], []
    lock = threading.Lock()
    rss_after_warmup = []

    def worker(n: int) -> None:
        c = Client(url, verbose=False)
        for i in range(50):
            metric = METRICS[(n + i) % len(METRICS)]
            try:
                gallery, results, prediction, offset, *_ = c.predict(
                    handle_file(files[(n + i) % len(files)]), metric, 5, api_name="/search")
                ok = (len(gallery) == len(results) == 5 and offset == 0 and "label" in prediction
                      and all({"rank", "id", "score", "label", "source"} <= set(r) for r in results))
                with lock:
                    shapes.append(ok)
                    done.append(1)
                    if len(done) == 100:
                        rss_after_warmup.append(_rss_mb(pid))
            except Exception as e:
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(shapes) == 800 and all(shapes)
    assert _rss_mb(pid) <= rss_after_warmup[0] * 1.10, (rss_after_warmup[0], _rss_mb(pid))


def test_sixteen_clients_searching_adding_deleting_for_a_minute_lose_nothing(indexed, tiny_model, shapes_dir,
                                                                             tmp_path):
    """bench/mixed.py's load on the shapes collection: 16 clients for 60 s calling /search, /add (new and already
    stored pictures), /delete and /check_duplicates. No errors; the count adds up; every picture added and kept is
    found first by itself; no search sent after a delete was answered returns that id; the stored files and the
    points agree afterwards."""
    import shutil

    from app.service import SearchService, Settings
    from bench.mixed import CLIENTS, mixed_load, pictures
    from tests.conftest import app_process_on
    from tests.test_crash import _consistent

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "pictures").mkdir()
    own = pictures(tmp_path / "pictures", CLIENTS, 60)
    files = [str(p) for kind in ("circle", "square", "triangle") for p in sorted((shapes_dir / kind).glob("*"))[:3]]
    proc, url = app_process_on(tiny_model, tmp_path / "q", name, tmp_path / "data")
    try:
        initial = Client(url, verbose=False).predict(api_name="/overview")["images"]
        out = mixed_load(url, own, files, seconds=60)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert out["errors"] == [] and out["violations"] == []
    assert min(out["calls"].values()) > 0, out["calls"]  # every kind of call was made
    service = SearchService(Settings(model_dir=str(tiny_model), collection=name, qdrant=str(tmp_path / "q"),
                                     data_dir=str(tmp_path / "data")))
    try:
        assert service.require_store().count() == initial + len(out["present"])
        for path, pid in out["present"].items():
            assert service.search(open(path, "rb").read(), "cosine", 1)[0][0]["id"] == pid
        assert not {h.id for h in service.require_store().file_points()} & out["gone"]
        assert service.reconciled == {"deleted": 0, "indexed": 0, "temp_removed": 0, "points_without_file": []}
        _consistent(service)
    finally:
        service.close()
