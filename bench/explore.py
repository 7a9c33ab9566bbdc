"""Beyond one picture: the map of the collection (its computation time at the demo collection's 70,000 images, and
how well it keeps each label together, beside PCA alone, and UMAP's when `umap-learn` is importable) and
/search_examples' latency beside /search and /search_by_id — in-process and through the HTTP API with
gradio_client as the README recommends.

python bench/explore.py [--model models/fmnist-small] [--requests 40]
UMAP too: pip install --no-deps --target /tmp/umap umap-learn pynndescent numba llvmlite, then
PYTHONPATH=/tmp/umap python bench/explore.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, percentiles, serve_process  # noqa: E402
from bench.serving import query_files  # noqa: E402
from indexer import atlas  # noqa: E402
from training import config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def neighbour_agreement(xy: np.ndarray, labels: list) -> float:
    """The share of mapped points whose nearest point on the map has their label: how readable the map is."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    near = np.empty(len(xy), dtype=int)
    for start in range(0, len(xy), 500):
        d = ((xy[start:start + 500, None] - xy[None]) ** 2).sum(-1)
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
        near[start:start + 500] = d.argmin(1)
    return float((labels[near] == labels).mean())


def the_map(rec: Recorder, collection: str, qdrant: str) -> None:
    from sklearn.decomposition import PCA

    from indexer.factory import open_store

    store = open_store(collection, qdrant)
    try:
        m = atlas.compute(store)  # what the app runs in the background: read everything, sample, project
        store.update_meta({"map": m})  # ... and keeps: the app started below finds it current
        hits = {h.id: h for h in store.retrieve(m["ids"], with_vectors=["float"])}
    finally:
        store.close()
    floats = np.stack([hits[i].float_vector for i in m["ids"]])
    t0 = time.perf_counter()
    pca = PCA(2, random_state=0).fit_transform(floats)
    pca_s = time.perf_counter() - t0
    rec.figure("map_seconds", m["seconds"], "s", points=m["points"], sampled=len(m["ids"]), method=m["method"],
               better="lower", pca_only_projection_seconds=round(pca_s, 3))
    rec.figure("map_nearest_point_same_label", neighbour_agreement(m["xy"], m["labels"]), "share",
               neighbour_agreement(pca, m["labels"]), "PCA alone (2 directions)", sampled=len(m["ids"]))
    if importlib.util.find_spec("umap") is not None:  # the other projection the issue names, when installed
        import umap

        for run in ("first call, JIT compiling", "second call"):
            t0 = time.perf_counter()
            xy = umap.UMAP(n_components=2, random_state=0).fit_transform(floats)
            rec.figure(f"umap_projection_seconds[{run}]", time.perf_counter() - t0, "s", better="lower",
                       sampled=len(floats), note="the projection only; the map's t-SNE is inside map_seconds")
        rec.figure("umap_nearest_point_same_label", neighbour_agreement(xy, m["labels"]), "share",
                   neighbour_agreement(m["xy"], m["labels"]), "t-SNE (the product's map)", sampled=len(floats))


def timed(rec: Recorder, name: str, call, n: int, baseline: float | None = None, baseline_name: str | None = None):
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - t0)
    pct = percentiles(times)
    rec.figure(name, pct["p50"], "ms", baseline, baseline_name, better="lower", p95=round(pct["p95"], 2), requests=n)
    return pct["p50"]


def in_process(rec: Recorder, args, ids: list[str]) -> None:
    from app.service import SearchService, Settings

    service = SearchService(Settings(model_dir=args.model, collection=args.collection, qdrant=args.qdrant,
                                     data_dir=tempfile.mkdtemp()))
    try:
        base = timed(rec, "in_process_by_id_p50_ms", lambda i: service.search_by_id(ids[i], "cosine", 10),
                     args.requests)
        for metric, strategy in (("cosine", "average_vector"), ("hamming", "average_vector"),
                                 ("cosine", "best_score")):
            timed(rec, f"in_process_examples_p50_ms[{metric}, {strategy}, 2 positive + 1 negative ids]",
                  lambda i, m=metric, s=strategy: service.search_examples(ids[i:i + 2], ids[i + 2:i + 3], m, 10,
                                                                          strategy=s),
                  args.requests, base, "search_by_id (one stored image)")
    finally:
        service.close()


def over_http(rec: Recorder, args, ids: list[str], files: list[str]) -> None:
    from gradio_client import Client, handle_file

    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    server, url = serve_process([sys.executable, "-m", "app", "--model", args.model, "--collection", args.collection,
                                 "--qdrant", args.qdrant, "--port", "0", "--data-dir", tempfile.mkdtemp(),
                                 "--requests-per-min", "0", "--upload-mb-per-min", "0"], env=env, cwd=ROOT,
                                timeout_s=120)
    try:
        client = Client(url, verbose=False, ssl_verify=ssl.create_default_context(), download_files=False)
        n = args.requests
        search = timed(rec, "http_search_p50_ms[one picture]", lambda i: client.predict(
            handle_file(files[i % len(files)]), "cosine", 10, api_name="/search"), n)
        timed(rec, "http_search_by_id_p50_ms", lambda i: client.predict(ids[i], "cosine", 10,
                                                                        api_name="/search_by_id"), n, search, "/search")
        timed(rec, "http_search_examples_p50_ms[2 positive + 1 negative ids]",
              lambda i: client.predict(" ".join(ids[i:i + 2]), ids[i + 2], None, None, "cosine", 10, [], 0,
                                       "average_vector", 0, api_name="/search_examples"), n, search, "/search")
        timed(rec, "http_search_examples_p50_ms[2 positive pictures + 1 negative id]",
              lambda i: client.predict("", ids[i], [handle_file(f) for f in files[i % 10:i % 10 + 2]], None,
                                       "cosine", 10, [], 0, "average_vector", 0, api_name="/search_examples"),
              n, search, "/search")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model", "collection", "qdrant")
    p.add_argument("--requests", type=int, default=40)
    args = p.parse_args()
    from indexer.factory import open_store
    from training.config import resolve_location

    args.qdrant = resolve_location(args.qdrant)
    rec = Recorder("explore")
    the_map(rec, args.collection, args.qdrant)
    store = open_store(args.collection, args.qdrant)
    hits, _ = store.scroll(limit=args.requests + 3, payload=False)
    store.close()
    ids = [h.id for h in hits]
    in_process(rec, args, ids)
    over_http(rec, args, ids, query_files(20, Path(tempfile.mkdtemp())))
    print(rec.save())


if __name__ == "__main__":
    main()
