"""Faults: a killed indexing run, two runs at once, Qdrant away, a collection that appears later."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.service import SearchService, Settings
from indexer.factory import open_store
from tests.conftest import make_shapes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("big"), 500, seed=1)


def _indexer(model, folder, qdrant, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", "build", "--model", str(model), "--dataset", str(folder),
         "--collection", "big", "--qdrant", str(qdrant), "--batch-size", "8", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )


def _wait_for_progress(proc, at_least: int, timeout: float = 120) -> bool:
    """Read the indexer's tqdm bar from stderr until it shows `at_least` images done."""
    seen = threading.Event()

    def read():
        buf = b""
        while chunk := proc.stderr.read1(4096):
            buf = (buf + chunk)[-400:]
            for part in buf.replace(b"\r", b"\n").split(b"\n"):
                if b"indexing:" in part and b"|" in part:
                    try:
                        done = int(part.split(b"|")[2].split(b"/")[0])
                    except (IndexError, ValueError):
                        continue
                    if done >= at_least:
                        seen.set()

    threading.Thread(target=read, daemon=True).start()
    return seen.wait(timeout)


def test_sigkill_half_way_then_rerun_gives_exactly_the_expected_points(tiny_model, big_folder, tmp_path):
    qdrant = tmp_path / "q"
    proc = _indexer(tiny_model, big_folder, qdrant)
    assert _wait_for_progress(proc, 200), "the indexer never got going"
    # Held still (SIGSTOP) with the collection open, it cannot finish before the second run starts: a second run
    # while the first holds the collection is refused, not interleaved.
    proc.send_signal(signal.SIGSTOP)
    second = _indexer(tiny_model, big_folder, qdrant)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and b"open in another process" in err
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    store = open_store("big", str(qdrant))
    partial = store.count()
    store.close()
    assert 0 < partial < 1500, f"the kill came too late to test anything ({partial} points)"

    again = _indexer(tiny_model, big_folder, qdrant)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-2000:]

    from indexer.pipeline import sources_of
    from training.data import load_image_dataset

    ds = load_image_dataset(str(big_folder))
    expected = [pid for s in ds for pid in sources_of(str(big_folder), s, 0, len(ds[s]), ds[s]["path"])[1]]
    store = open_store("big", str(qdrant))
    try:
        assert store.count() == len(expected) == 1500  # no duplicates
        assert len(store.retrieve(expected)) == 1500  # no gaps
    finally:
        store.close()


def test_app_starts_and_says_what_is_wrong_when_qdrant_is_unreachable(tiny_model, tmp_path, refusing_port):
    from indexer.store import StoreError

    url = f"http://127.0.0.1:{refusing_port}"
    start = time.perf_counter()
    service = SearchService(Settings(model_dir=str(tiny_model), qdrant=url, data_dir=str(tmp_path)))
    try:
        assert time.perf_counter() - start < 30
        assert service.status().startswith("⚠️") and "does not answer" in service.status()
        with pytest.raises(StoreError, match="QDRANT_URL"):
            service.search(b"irrelevant", "cosine", 3)
    finally:
        service.close()


def test_app_recovers_when_the_collection_appears(tiny_model, shapes_dir, tmp_path):
    """The app opens the collection lazily: started before the index exists, it works once it is built."""
    from indexer.embedder import Embedder
    from indexer.pipeline import build_index

    qdrant = tmp_path / "q"
    service = SearchService(Settings(model_dir=str(tiny_model), collection="later", qdrant=str(qdrant),
                                     data_dir=str(tmp_path)))
    try:
        assert "does not exist yet" in service.status()
        store = open_store("later", str(qdrant))  # the app does not hold the lock while it has no collection
        build_index(Embedder(tiny_model), store, str(shapes_dir))
        store.close()
        assert service.status().startswith("120 images")
        data = next((shapes_dir / "square").glob("*.png")).read_bytes()
        results, *_ = service.search(data, "cosine", 3)
        assert results[0]["score"] == pytest.approx(1, abs=1e-3)
    finally:
        service.close()


def test_app_recovers_by_itself_when_its_rest_endpoint_comes_back(tiny_model, shapes_dir, tmp_path, rest_standin,
                                                                  monkeypatch):
    """The REST path (the stand-in: local mode behind REST, stopped and started on the same port): the endpoint
    goes away during use (connections cut, port closed): searches fail with a message that says what to do, the
    page's status says it, nothing is lost; when it is back on the same address the next search works, with the
    same answer, without restarting the app."""
    from indexer.embedder import Embedder
    from indexer.pipeline import build_index

    monkeypatch.setenv("QDRANT_API_KEY", rest_standin.api_key)
    store = open_store("served", rest_standin.url)
    build_index(Embedder(tiny_model), store, str(shapes_dir))
    store.close()
    service = SearchService(Settings(model_dir=str(tiny_model), collection="served", qdrant=rest_standin.url,
                                     data_dir=str(tmp_path)))
    try:
        data = next((shapes_dir / "circle").glob("*.png")).read_bytes()
        before, *_ = service.search(data, "cosine", 5)
        rest_standin.stop()
        from indexer.store import StoreError

        with pytest.raises(StoreError, match="does not answer.*QDRANT_URL"):
            service.search(data, "hamming", 5)
        assert service.status().startswith("⚠️") and "does not answer" in service.status()
        rest_standin.start()  # same port, same data
        after, *_ = service.search(data, "cosine", 5)
        assert [r["id"] for r in after] == [r["id"] for r in before]
        assert service.status().startswith("120 images")
    finally:
        service.close()


def test_transient_rest_errors_are_retried_then_reported(rest_standin):
    """503 answers (what a restarting node or a leader election gives; here the stand-in told to answer so) are
    retried with back-off; past the retries, the error says what to do. A wrong API key is not retried and says
    which setting to fix."""
    from indexer.server import ClientStore
    from indexer.store import StoreError, StoreUnavailable

    store = ClientStore("c", url=rest_standin.url, api_key=rest_standin.api_key)
    try:
        store.ensure({"float_dim": 4, "n_bits": 8, "model": "m", "model_sha256": "0"})
        rest_standin.requests.clear()
        rest_standin.fail_next = 2
        assert store.count() == 0
        # 2 answered 503 and retried, then answered; then the count itself
        assert rest_standin.requests == ["GET /collections/c/exists"] * 3 + ["POST /collections/c/points/count"]
        rest_standin.fail_next = ClientStore.RETRIES + 1
        with pytest.raises(StoreUnavailable, match="does not answer"):
            store.count()
    finally:
        store.close()
    wrong = ClientStore("c", url=rest_standin.url, api_key="not-the-key")
    try:
        rest_standin.requests.clear()
        with pytest.raises(StoreError, match="refused the API key.*QDRANT_API_KEY"):
            wrong.count()
        assert len(rest_standin.requests) == 1
    finally:
        wrong.close()
