"""The engine interface (indexer.store.Store): one contract, run against every engine this machine can run — the
embedded engine, qdrant-client's local mode, and the REST path (answered by the REST stand-in)."""

import inspect
import tarfile

import numpy as np
import pytest

from indexer import ranking
from indexer.factory import open_store
from indexer.plans import Hit
from indexer.store import Store, StoreError, point_id

N, DIM, BITS = 60, 16, 16
META = {"float_dim": DIM, "n_bits": BITS, "model": "contract", "model_sha256": "0"}


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    floats = rng.normal(size=(N, DIM)).astype(np.float32)
    floats /= np.linalg.norm(floats, axis=1, keepdims=True)
    codes = (rng.random((N, BITS)) > 0.5).astype(np.uint8)
    codes[10:20] = codes[10]  # a tie: ten points share one code
    payloads = [{"label": "abc"[i % 3], "label_id": i % 3, "source": {"dataset": "d", "split": "train", "row": i}}
                for i in range(N)]
    ids = [point_id(p["source"]) for p in payloads]
    return ids, floats, codes, payloads


@pytest.fixture(params=["embedded", "local", "rest"])
def engine(request, tmp_path, monkeypatch):
    """A fresh store of each engine, and where it lives."""
    if request.param == "embedded":
        location = str(tmp_path / "q")
    elif request.param == "local":
        location = ":memory:"
    else:
        server = request.getfixturevalue("rest_standin")
        monkeypatch.setenv("QDRANT_API_KEY", server.api_key)
        location = server.url
    store = open_store("contract", location)
    yield request.param, store, location
    store.close()


def _filled(store, points) -> Store:
    store.ensure(META)
    store.upsert(*points)
    store.flush()
    return store


def test_every_engine_implements_the_whole_interface():
    from indexer.edge import EdgeStore
    from indexer.server import ClientStore

    abstract = {n for n, m in inspect.getmembers(Store) if getattr(m, "__isabstractmethod__", False)}
    assert {"_query", "retrieve", "upsert", "delete", "count", "write_snapshot", "read_snapshot", "swap_in"} <= abstract
    for adapter in (EdgeStore, ClientStore):
        assert not adapter.__abstractmethods__, f"{adapter.__name__} lacks {sorted(adapter.__abstractmethods__)}"
        assert adapter.engine in ("embedded", "server") and adapter.SNAPSHOT_MEMBER

    class Partial(Store):  # an engine that forgot its primitives cannot be made, rather than answering None
        engine = "partial"

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_write_count_retrieve_scroll_delete(engine, points):
    _, store, _ = engine
    ids, floats, codes, payloads = points
    _filled(store, points)
    assert store.count() == N and store.count(["a"]) == 20
    assert store.label_counts() == {"a": 20, "b": 20, "c": 20}
    (got,) = store.retrieve([ids[3]], with_vectors=True)
    assert isinstance(got, Hit) and got.payload["label"] == "a"
    assert np.allclose(got.float_vector, floats[3], atol=1e-6) and (got.code_vector == codes[3]).all()
    assert sorted(h.id for h in store.all_points(batch=7)) == sorted(ids)
    store.upsert(*points)  # the same ids again: nothing added
    store.delete(ids[:5])
    store.flush()
    assert store.count() == N - 5 and store.retrieve(ids[:5]) == []


@pytest.mark.parametrize("metric", ranking.METRICS)
def test_search_ranks_as_the_numpy_reference(engine, points, metric):
    _, store, _ = engine
    ids, floats, codes, _ = points
    _filled(store, points)
    for q in (0, 10, 33):
        hits = store.search(metric, floats[q], codes[q], k=8, exact=True)
        expected = ranking.top(metric, floats[q], codes[q], floats, codes, 8, 8 * ranking.OVERSAMPLING)
        assert [h.id for h in hits] == [ids[i] for i in expected]


def test_a_collection_indexes_every_field_searches_filter_on(points, tmp_path):
    """The embedded engine's payload schema (qdrant-client's local mode, behind the REST stand-in too, keeps no
    payload indexes: it says so itself)."""
    from indexer.plans import INDEXED_FIELDS

    store = _filled(open_store("contract", str(tmp_path / "q")), points)
    try:
        assert set(INDEXED_FIELDS) <= set(store._shard.info().payload_schema)
    finally:
        store.close()


def test_a_small_collection_is_searched_exactly_and_a_larger_one_through_its_graph(engine, points, monkeypatch):
    from indexer import plans

    _, store, _ = engine
    ids, floats, codes, _ = points
    _filled(store, points)
    sent = []
    real = store._query
    monkeypatch.setattr(store, "_query", lambda request: sent.append(request) or real(request))
    monkeypatch.setattr(plans, "SIZE_CHECK_SECONDS", -1)  # counted again at every search
    expected = [ids[i] for i in ranking.top("cosine", floats[5], codes[5], floats, codes, 5)]
    assert [h.id for h in store.search("cosine", floats[5], codes[5], k=5)] == expected and sent[-1].exact
    store.search_examples("cosine", "best_score", store.retrieve([ids[5]], with_vectors=True), [], k=5)
    assert sent[-1].examples is not None and sent[-1].exact  # a recommendation query too
    monkeypatch.setattr(plans, "EXACT_UP_TO", N - 1)
    assert [h.id for h in store.search("cosine", floats[5], codes[5], k=5)] == expected and not sent[-1].exact


@pytest.mark.parametrize("metric,strategy", [("cosine", "average_vector"), ("hamming", "average_vector"),
                                             ("hamming+rerank", "average_vector"), ("cosine", "best_score")])
def test_examples_rank_as_the_numpy_reference(engine, points, metric, strategy):
    """Several examples as one query (positives and negatives), in every engine, as indexer.ranking ranks them."""
    _, store, _ = engine
    ids, floats, codes, _ = points
    _filled(store, points)
    for pos, neg in (([0, 10], [33]), ([4, 11, 40], [])):
        examples = [store.retrieve([ids[i] for i in group], with_vectors=True) for group in (pos, neg)]
        got = store.search_examples(metric, strategy, *examples, k=8, exclude=[ids[i] for i in pos + neg])
        order = ranking.rank_examples(strategy, metric, floats[pos], codes[pos], floats[neg], codes[neg], floats,
                                      codes, 8 * ranking.OVERSAMPLING)
        expected = [ids[i] for i in order if i not in pos + neg][:8]
        assert [h.id for h in got] == expected
    with pytest.raises(ValueError, match="cosine"):
        store.search_examples("hamming", "best_score", examples[0], [])


def test_a_snapshot_restores_elsewhere_with_the_same_answers(engine, points, tmp_path):
    kind, store, location = engine
    ids, floats, codes, _ = points
    _filled(store, points)
    archive = tmp_path / "engine.tar"
    if kind == "local":  # no REST API to take a server snapshot with: said, not attempted
        with tarfile.open(archive, "w") as tar, pytest.raises(StoreError, match="REST API"):
            store.write_snapshot(tar)
        return
    with tarfile.open(archive, "w") as tar:
        store.write_snapshot(tar)
    assert store.SNAPSHOT_MEMBER in {m.name for m in tarfile.open(archive).getmembers()}
    other = open_store("contract_copy", location)
    try:
        with tarfile.open(archive) as tar:
            other.read_snapshot(tar)
        assert other.count() == N
        for metric in ranking.METRICS:
            assert [h.id for h in other.search(metric, floats[4], codes[4], k=6, exact=True)] == [
                h.id for h in store.search(metric, floats[4], codes[4], k=6, exact=True)]
    finally:
        other.close()


def test_swap_in_replaces_the_collection_by_a_staged_copy(engine, points):
    _, store, location = engine
    ids, floats, codes, payloads = points
    _filled(store, points)
    staging = open_store("contract_staging", location)
    staging.ensure(META)
    staging.upsert(ids[:12], floats[:12], codes[:12], payloads[:12])
    staging.flush()
    store.swap_in(staging)
    staging.close()
    assert store.count() == 12 and sorted(h.id for h in store.all_points()) == sorted(ids[:12])
    assert store.meta["model"] == "contract"


def test_closing_the_embedded_store_waits_for_calls_running_in_other_threads(tmp_path):
    """The app closes its store while a background thread (the collection's map) may still be scrolling it: the
    engine refuses to close a shard in use ("Already borrowed"), so close waits those calls out, and calls after it
    are refused. Real threads, real engine: without the wait, some of these closes fail."""
    import threading
    import time

    rng = np.random.default_rng(0)
    n, dim = 3000, 64
    floats = rng.normal(size=(n, dim)).astype(np.float32)
    floats /= np.linalg.norm(floats, axis=1, keepdims=True)
    codes = (rng.random((n, dim)) > 0.5).astype(np.uint8)
    payloads = [{"label": "ab"[i % 2], "label_id": i % 2, "source": {"dataset": "d", "split": "train", "row": i}}
                for i in range(n)]
    points = ([point_id(p["source"]) for p in payloads], floats, codes, payloads)
    for trial in range(8):
        store = open_store("busy", str(tmp_path / str(trial)))
        store.ensure({"float_dim": dim, "n_bits": dim, "model": "contract", "model_sha256": "0"})
        store.upsert(*points)
        store.flush()
        ended: list[Exception] = []
        threads = [threading.Thread(target=_scroll_until_closed, args=(store, ended)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        store.close()
        for t in threads:
            t.join(10)
        # a call that had the shard in hand when close began ends with the engine's own word for it
        assert len(ended) == 2 and all("closed" in str(e) or "not initialized" in str(e) for e in ended), ended


def _scroll_until_closed(store, ended: list) -> None:
    try:
        while True:
            list(store.all_points(batch=500))
    except Exception as e:  # noqa: BLE001 (which one ended it is what the test checks)
        ended.append(e)
