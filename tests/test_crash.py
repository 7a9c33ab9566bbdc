"""Nothing is lost: writes a crash left half done are finished at the next start, and what was answered stays."""

import random
import shutil
import signal
import threading
import time

import pytest
from gradio_client import Client, handle_file

from tests.conftest import app_process_on, draw_shape


def _own_collection(indexed, tmp_path):
    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "q", name


def _pictures(tmp_path, n: int, seed: int) -> list:
    out = tmp_path / f"pictures-{seed}"
    out.mkdir()
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        path = out / f"{i:03d}.png"
        draw_shape(rng.choice(["circle", "square", "triangle"]), rng, size=40).save(path)
        paths.append(path)
    return paths


def kill_once_answered(proc, answers: list, n: int, timeout_s: float = 120) -> None:
    """SIGKILL `proc` as soon as `n` of its answers have arrived (a condition, not a guess at how long that takes)."""
    deadline = time.monotonic() + timeout_s
    while len(answers) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)


def _consistent(service) -> None:
    """Every stored file has its point and every file point its file."""
    print("reconciled at restart:", {k: v for k, v in service.reconciled.items()})
    from indexer.store import point_id

    files = [p for p in service.settings.image_dir.glob("*/*") if p.suffix in (".png", ".jpg")]
    ids = [point_id({"sha256": p.name.split(".")[0]}) for p in files]
    assert len(service.require_store().retrieve(ids)) == len(ids)
    assert service.reconciled["points_without_file"] == []
    assert not list(service.settings.image_dir.glob("*/*.deleting")) and not list(
        service.settings.image_dir.glob("*/*.tmp"))


def test_reconcile_finishes_what_a_crash_left_half_done(indexed, tiny_model, tmp_path):
    """The three half-done states, made by hand: a stored file without its point (killed between the two writes of
    an add), a file marked for deletion with its point still there (killed inside a delete), a point whose file is
    gone. Opening the collection indexes the first with its label, deletes the second, reports the third."""
    from app.service import SearchService, Settings
    from indexer.store import point_id
    from indexer.uploads import mark_deleting, store_file
    from training.images import sha256

    qdrant, name = _own_collection(indexed, tmp_path)
    settings = Settings(model_dir=str(tiny_model), collection=name, qdrant=str(qdrant), data_dir=str(tmp_path / "d"))
    a, b, c = (p.read_bytes() for p in _pictures(tmp_path, 3, seed=1))
    service = SearchService(settings)
    added, _ = service.add([(b, "square"), (c, "circle")])
    service.close()
    store_file(a, settings.image_dir, "png", "triangle")  # file written, point never upserted
    mark_deleting(settings.image_dir, [added[0]["source"]["file"]])  # marked, point not yet deleted
    (settings.image_dir / added[1]["source"]["file"]).unlink()  # a point that lost its file
    (settings.image_dir / "ab").mkdir(exist_ok=True)
    (settings.image_dir / "ab" / "x.png.123.456.tmp").write_bytes(b"half")  # a half-written temp file

    service = SearchService(settings)
    try:
        assert service.reconciled == {"deleted": 1, "indexed": 1, "temp_removed": 1,
                                      "points_without_file": [added[1]["id"]]}
        (restored,) = service.require_store().retrieve([point_id({"sha256": sha256(a)})])
        assert restored.payload["label"] == "triangle"
        assert service.require_store().retrieve([added[0]["id"]]) == []
        assert "1 stored images have lost their files" in service.status()
    finally:
        service.close()


@pytest.mark.slow
def test_sigkill_during_adds_and_deletes_loses_nothing_that_was_answered(indexed, tiny_model, tmp_path):
    """The app as its own process, four clients adding (then deleting) as fast as they can, SIGKILL mid-flight,
    restart: every add that was answered is there and found first by its own picture, every delete that was
    answered is gone, and the files and points agree."""
    from app.service import SearchService, Settings

    qdrant, name = _own_collection(indexed, tmp_path)
    data = tmp_path / "data"
    pictures = _pictures(tmp_path, 600, seed=2)

    def hammer(url, work) -> tuple[list, list, list]:
        """Run `work(client, n)` from four clients until killed; (answers, errors, threads)."""
        answers, errors, lock = [], [], threading.Lock()

        def run(n):
            client = Client(url, verbose=False)
            while n < len(pictures):
                try:
                    out = work(client, n)
                    with lock:
                        answers.append((n, out))
                except Exception as e:  # the kill: connection refused/reset
                    with lock:
                        errors.append(repr(e))
                    return
                n += 4

        threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        return answers, errors, threads

    # --- adds, killed mid-flight
    proc, url = app_process_on(tiny_model, qdrant, name, data)
    answers, errors, threads = hammer(url, lambda c, n: c.predict([handle_file(str(pictures[n]))], "circle",
                                                                  api_name="/add")[0]["added"][0]["id"])
    kill_once_answered(proc, answers, 12)
    proc.wait()
    for t in threads:
        t.join(timeout=60)
    added = dict(answers)
    assert added, "no add was answered before the kill: the test proves nothing"
    assert len(added) < len(pictures), "every add finished before the kill: the test proves nothing"

    service = SearchService(Settings(model_dir=str(tiny_model), collection=name, qdrant=str(qdrant),
                                     data_dir=str(data)))
    try:
        _consistent(service)
        for n, pid in added.items():
            results, _, _ = service.search(pictures[n].read_bytes(), "cosine", 1)
            assert results[0]["id"] == pid
        stored_after_restart = {h.id for h in service.require_store().file_points()}
        assert set(added.values()) <= stored_after_restart
    finally:
        service.close()

    # --- deletes, killed mid-flight
    ids = sorted(stored_after_restart)
    proc, url = app_process_on(tiny_model, qdrant, name, data)
    pictures = ids  # hammer walks this list
    answers, errors, threads = hammer(url, lambda c, n: c.predict(ids[n], api_name="/delete")[0]["deleted"])
    kill_once_answered(proc, answers, 12)
    proc.wait()
    for t in threads:
        t.join(timeout=60)
    deleted = {ids[n] for n, count in answers if count == 1}
    assert deleted, "no delete was answered before the kill: the test proves nothing"
    service = SearchService(Settings(model_dir=str(tiny_model), collection=name, qdrant=str(qdrant),
                                     data_dir=str(data)))
    try:
        _consistent(service)
        left = {h.id for h in service.require_store().file_points()}
        assert not deleted & left and left <= set(ids)
    finally:
        service.close()
