"""Search latency and recall: the embedded engine (qdrant-edge), qdrant-client local mode, and the rules' NumPy
reference (`indexer.ranking`), at the demo collection's real vectors and at synthetic scale; beside them, two peers
for the bare Hamming k-nearest (no tie rule): FAISS `IndexBinaryFlat` and NumPy popcount over packed codes.

python bench/search.py [--model models/fmnist-small] [--synthetic 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, percentiles  # noqa: E402
from indexer import plans, ranking
from indexer.factory import open_store  # noqa: E402
from training import config  # noqa: E402

K = 10
ROOT = Path(__file__).resolve().parent.parent


def synthetic(n: int, dim: int, bits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (like class-structured features) and their sign codes through a random projection."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    floats = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        floats[start : start + m] = centres[rng.integers(0, 1000, m)] + 0.6 * rng.normal(size=(m, dim))
    floats /= np.linalg.norm(floats, axis=1, keepdims=True)
    proj = rng.normal(size=(dim, bits)).astype(np.float32)
    codes = np.empty((n, bits), dtype=np.uint8)
    for start in range(0, n, 100_000):
        codes[start : start + 100_000] = floats[start : start + 100_000] @ proj > 0
    return floats, codes


def _timed(fn, queries) -> tuple[dict, dict]:
    times, out = [], {}
    for q in queries:
        t0 = time.perf_counter()
        out[q] = fn(q)
        times.append(time.perf_counter() - t0)
    return percentiles(times), out


def peers(rec: Recorder, tag: str, codes: np.ndarray, queries, reference: dict) -> None:
    """The bare Hamming k-nearest by two peers, one thread; recall against the reference's top 10 (with its tie
    rule, which the peers do not have: they cut a tie anywhere)."""
    import faiss

    faiss.omp_set_num_threads(1)
    packed = np.packbits(codes, axis=1)
    index = faiss.IndexBinaryFlat(codes.shape[1])
    index.add(packed)
    words = packed.view(np.uint64)  # 64 bits: one word a code

    def popcount(q):
        dist = np.bitwise_count(words ^ words[q]).sum(1)
        first = np.argpartition(dist, K - 1)[:K]
        return first[np.argsort(dist[first], kind="stable")]

    for name, fn in (("faiss IndexBinaryFlat", lambda q: index.search(packed[q : q + 1], K)[1][0]),
                     ("numpy packed popcount", popcount)):
        pct, tops = _timed(fn, queries)
        recall = np.mean([len(set(tops[q].tolist()) & set(reference[q].tolist())) / K for q in queries])
        rec.figure(f"peer_p50_ms[{tag}, {name}, hamming k-nearest]", pct["p50"], "ms", better="lower",
                   p95=round(pct["p95"], 3), recall_at_10_vs_tie_rule=round(float(recall), 4), points=len(codes),
                   note="no tie rule: ties at the cut-off in index order")


def bench_store(rec: Recorder, tag: str, store, floats, codes, queries, baseline: dict, numpy_top: dict,
                upload: bool = True, search: bool = True) -> None:
    n = len(floats)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    if upload:
        meta = {"model": "bench", "model_sha256": "bench", "n_bits": codes.shape[1], "float_dim": floats.shape[1]}
        store.ensure(meta, recreate=True)
        t0 = time.perf_counter()
        for start in range(0, n, 2000):
            sl = slice(start, start + 2000)
            store.upsert(ids[sl], floats[sl], codes[sl], [{"label": str(i % 10)} for i in range(sl.start,
                                                                                              min(sl.stop, n))])
        store.flush()
        rec.figure(f"upsert_seconds[{tag}]", time.perf_counter() - t0, "s", points=n)
    index = {u: i for i, u in enumerate(ids)}
    for metric in ranking.METRICS if search else ():
        for q in queries:  # warm: every page these queries touch mapped once, as a serving collection's are
            store.search(metric, floats[q], codes[q], k=K)
        times, recall = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = store.search(metric, floats[q], codes[q], k=K)
            times.append(time.perf_counter() - t0)
            recall.append(len({index[h.id] for h in hits} & set(numpy_top[metric][q].tolist())) / K)
        pct = percentiles(times)
        rec.figure(f"p50_ms[{tag}, {metric}]", pct["p50"], "ms", baseline[metric], "exact NumPy scan p50",
                   better="lower", p95=round(pct["p95"], 3), p99=round(pct["p99"], 3),
                   recall_at_10=round(float(np.mean(recall)), 4), points=n)


def numpy_baseline(rec: Recorder, tag: str, floats, codes, queries) -> tuple[dict, dict]:
    """The rules' NumPy reference (indexer.ranking): each metric's exact top 10, and how long a flat scan takes."""
    base, tops = {}, {}
    for metric in ranking.METRICS:
        pct, tops[metric] = _timed(lambda q, m=metric: ranking.top(m, floats[q], codes[q], floats, codes, K), queries)
        base[metric] = pct["p50"]
        rec.figure(f"numpy_p50_ms[{tag}, {metric}]", pct["p50"], "ms", p95=round(pct["p95"], 3), points=len(floats))
    return base, tops


def code_bytes(path: Path) -> int:
    """What the engine keeps of the codes in RAM: the binary-quantized `code` vectors."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "vector_storage-code" in p.parts
               and "quantized" in p.name)


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ram_bytes(path: Path, floats, codes, queries: list[int], collection: str = "bench") -> int:
    """Resident memory a fresh process gains by opening the collection at `path` and answering queries of each
    metric (its pages touched, mmap'd storage included): what serving it costs in RAM."""
    q = Path(tempfile.mkdtemp(prefix="bench-ram-")) / "q.npz"
    np.savez(q, floats=floats[queries], codes=codes[queries])
    code = f"""
import sys, numpy as np
sys.path.insert(0, {str(ROOT)!r})
def rss():
    return int(next(line for line in open('/proc/self/status') if line.startswith('VmRSS')).split()[1]) * 1024
from indexer.factory import open_store
import qdrant_edge
before = rss()
store = open_store({collection!r}, {str(path)!r})
q = np.load({str(q)!r})
for metric in ('cosine', 'hamming', 'hamming+rerank'):
    for f, c in zip(q['floats'], q['codes']):
        store.search(metric, f, c, k=10)
print(rss() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    shutil.rmtree(q.parent, ignore_errors=True)
    return int(out.stdout.strip().splitlines()[-1])


def optimized(rec: Recorder, tag: str, layout: str, build: str, store, path: Path, floats, codes, queries, base,
              tops) -> None:
    """Build the store's index (HNSW, or the quantized vectors), then time it, search it, weigh it on disk."""
    t0 = time.perf_counter()
    store.optimize()
    rec.figure(f"{build}[{tag}, embedded]", time.perf_counter() - t0, "s")
    bench_store(rec, f"{tag}, {layout}", store, floats, codes, queries, base, tops, upload=False)
    rec.figure(f"disk_bytes_per_point[{tag}, {layout}]", disk_bytes(path / "bench") / len(floats), "B")
    rec.figure(f"code_ram_bytes_per_point[{tag}, {layout}]", code_bytes(path / "bench") / len(floats), "B",
               bits=codes.shape[1], note="the binary-quantized codes, kept in RAM; the ±1 originals stay on disk")


def run_scale(rec: Recorder, tag: str, floats, codes, n_queries: int, local_mode: bool, hnsw: bool = True) -> None:
    rng = np.random.default_rng(1)
    queries = rng.choice(len(floats), n_queries, replace=False).tolist()
    base, tops = numpy_baseline(rec, tag, floats, codes, queries)
    peers(rec, tag, codes, queries, tops["hamming"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        edge = open_store("bench", str(tmp))
        bench_store(rec, f"{tag}, embedded", edge, floats, codes, queries, base, tops)
        rec.figure(f"disk_bytes_per_point[{tag}, embedded]", disk_bytes(tmp / "bench") / len(floats), "B",
                   raw_vector_bytes=floats.shape[1] * 4 + codes.shape[1])
        if hnsw:  # at 1M the HNSW build took over 10 minutes on 2 cores: the quantized layout below is for that
            optimized(rec, tag, "embedded+hnsw", "hnsw_build_seconds", edge, tmp, floats, codes, queries, base, tops)
        edge.close()
        rec.figure(f"ram_bytes_per_point[{tag}, {'embedded+hnsw' if hnsw else 'embedded'}]",
                   ram_bytes(tmp, floats, codes, queries) / len(floats), "B",
                   note="RSS a fresh process gains by opening the collection and answering every metric")
        shutil.rmtree(tmp / "bench")
        quant = open_store("bench", str(tmp), quantized=True)
        bench_store(rec, f"{tag}, embedded quantized", quant, floats, codes, queries, base, tops, search=False)
        optimized(rec, tag, "embedded quantized", "quantization_build_seconds", quant, tmp, floats, codes, queries,
                  base, tops)
        quant.close()
        rec.figure(f"ram_bytes_per_point[{tag}, embedded quantized]",
                   ram_bytes(tmp, floats, codes, queries) / len(floats), "B")
        if local_mode:
            local = open_store("bench", ":memory:")
            # local mode is a pure-Python brute force (its hamming tie re-fetch takes seconds): 10 queries
            bench_store(rec, f"{tag}, client local mode", local, floats, codes, queries[:10], base, tops)
            local.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model")  # the app's defaults
    p.add_argument("--synthetic", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    # The engines' own paths (the graph, the quantized scan) at every size: the product scans a collection of up to
    # plans.EXACT_UP_TO points exactly, which would make the 70k "+hnsw" rows a scan.
    plans.EXACT_UP_TO = 0
    rec = Recorder("search")
    from indexer.embedder import Embedder
    from training.data import load_image_dataset

    ds = load_image_dataset("fashion_mnist")
    embedder = Embedder(args.model)
    images = list(ds["train"]["image"]) + list(ds["test"]["image"])
    embs = [embedder.embed(images[s : s + 4096], embedder.profile) for s in range(0, len(images), 4096)]
    floats = np.concatenate([e.floats for e in embs])
    codes = np.concatenate([e.codes for e in embs])
    run_scale(rec, f"{len(floats) // 1000}k real", floats, codes, args.queries, local_mode=True)
    if args.synthetic:
        f, c = synthetic(args.synthetic, floats.shape[1], codes.shape[1])
        run_scale(rec, f"{args.synthetic // 1000}k synthetic", f, c, args.queries, local_mode=False, hnsw=False)
    print(rec.save())


if __name__ == "__main__":
    main()
