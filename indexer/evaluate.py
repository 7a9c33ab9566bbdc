"""Retrieval quality on the standard protocol: every test image queries the train images; relevant = same label.

Full rankings are computed exactly in NumPy (mAP@all needs the whole ranking); the product's real search
path, the Qdrant collection, answers a sample of the same queries and is cross-checked against them.

The metrics rank by their rules in `indexer.ranking`; `hamming_index_ties` reports the naive Hamming rule (ties in
database order only), `raw_pixels` and `phash64` are baselines.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from indexer import ranking
from indexer.embedder import Embedder
from indexer.factory import open_store
from indexer.floor import pixel_vectors
from indexer.metrics import average_precision, code_balance, precision_at, recall_at
from indexer.pipeline import sources_of
from indexer.store import StoreError
from training import config
from training.data import load_image_dataset

log = logging.getLogger(__name__)

P_KS = [1, 10, 100, 1000]
CURVE_KS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 40000, 60000]
RERANK_CANDIDATES = 1000 * ranking.OVERSAMPLING  # hamming+rerank's candidates for the whole ranking (mAP@1000)


def _embed_all(embedder: Embedder, images, chunk: int = 4096):
    floats, codes, probs = [], [], []
    for start in tqdm(range(0, len(images), chunk), desc="embedding", unit="chunk"):
        e = embedder.embed(images[start : start + chunk], embedder.profile)
        floats.append(e.floats)
        codes.append(e.codes)
        probs.append(e.probs)
    return np.concatenate(floats), np.concatenate(codes), np.concatenate(probs)


def _phash(images) -> np.ndarray:
    import imagehash

    return np.stack([imagehash.phash(im, hash_size=8).hash.ravel() for im in images]).astype(np.uint8)


# Beside the product's metrics (ranking.REGISTRY): the codes with ties in database order, raw pixels, a perceptual hash.
BASELINES = ("hamming_index_ties", "raw_pixels", "phash64")


def rankings(method: str, q: dict, db: dict, rows: slice, candidates: int = RERANK_CANDIDATES) -> np.ndarray:
    """Database indices in ranked order for queries `rows`, by `method`: the product's metrics by their rules
    (indexer.ranking), and the baselines."""
    if method in ranking.REGISTRY:
        return ranking.rank(method, q["floats"][rows], q["codes"][rows], db["floats"], db["codes"], candidates)
    if method == "raw_pixels":
        return np.argsort(-(q["pixels"][rows] @ db["pixels"].T), axis=1, kind="stable")
    key = "phash" if method == "phash64" else "codes"  # hamming_index_ties: the codes, ties in database order
    return np.argsort(ranking.hamming(q[key][rows], db[key]), axis=1, kind="stable")


def score_method(method: str, q: dict, db: dict, chunk: int = 500) -> dict:
    n = len(q["labels"])
    ap_all, ap_1000, prec, rec = [], [], [], []
    n_rel_all = np.bincount(db["labels"], minlength=int(max(db["labels"].max(), q["labels"].max()) + 1))
    start_t = time.perf_counter()
    for start in tqdm(range(0, n, chunk), desc=method, unit="chunk"):
        rows = slice(start, min(start + chunk, n))
        order = rankings(method, q, db, rows)
        rel = db["labels"][order] == q["labels"][rows, None]
        ap_all.append(average_precision(rel))
        ap_1000.append(average_precision(rel, 1000))
        weight = rows.stop - rows.start  # per-chunk means, weighted back into means over all queries
        prec.append(np.array(list(precision_at(rel, CURVE_KS).values())) * weight)
        rec.append(np.array(list(recall_at(rel, CURVE_KS, n_rel_all[q["labels"][rows]]).values())) * weight)
    seconds = time.perf_counter() - start_t
    p_curve = np.sum(prec, axis=0) / n
    r_curve = np.sum(rec, axis=0) / n
    result = {
        "map_all": float(np.concatenate(ap_all).mean()),
        "map_1000": float(np.concatenate(ap_1000).mean()),
        **{f"p_at_{k}": float(p_curve[CURVE_KS.index(k)]) for k in P_KS},
        "curve": {"k": CURVE_KS, "precision": [round(float(x), 4) for x in p_curve],
                  "recall": [round(float(x), 4) for x in r_curve]},
        "numpy_ms_per_query": round(1000 * seconds / n, 3),
    }
    return result


def qdrant_check(store, embedder: Embedder, q: dict, db: dict, dataset: str, n_queries: int, train_split) -> dict:
    """The same queries through the product's search path: P@10, query time, and agreement of the top 10
    with the exact NumPy ranking."""
    paths = train_split["path"] if "path" in train_split.column_names else None  # a folder's files
    _, ids = sources_of(dataset, "train", 0, len(db["labels"]), paths)
    id_to_row = {pid: i for i, pid in enumerate(ids)}
    out = {}
    for metric in ranking.METRICS:
        times, p10, agree = [], [], []
        exact = rankings(metric, q, db, slice(0, n_queries), candidates=10 * ranking.OVERSAMPLING)[:, :10]
        for i in range(n_queries):
            t0 = time.perf_counter()
            hits = store.search(metric, q["floats"][i], q["codes"][i], k=10, split="train",
                                 oversampling=ranking.OVERSAMPLING)
            times.append(time.perf_counter() - t0)
            rows = [id_to_row.get(h.id, -1) for h in hits]
            p10.append(np.mean([r >= 0 and db["labels"][r] == q["labels"][i] for r in rows]))
            agree.append(len(set(rows) & set(exact[i].tolist())) / 10)
        out[ranking.metric(metric).report_key] = {
            "queries": n_queries,
            "p_at_10": float(np.mean(p10)),
            "top10_overlap_with_exact": float(np.mean(agree)),
            "query_ms_mean": round(1000 * float(np.mean(times)), 3),
            "query_ms_p50": round(1000 * float(np.median(times)), 3),
        }
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, m in report["methods"].items():
        c = m["curve"]
        a.plot(c["k"], c["precision"], marker=".", label=f"{name} (mAP {m['map_all']:.3f})")
        b.plot(c["recall"], c["precision"], marker=".", label=name)
    a.set_xscale("log")
    a.set(xlabel="k", ylabel="precision@k", title="Precision@k")
    b.set(xlabel="recall", ylabel="precision", title="Precision–recall (by cutoff k)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(f"{report['dataset']}: {report['queries']} test queries vs {report['database']} train images")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(
    model_dir: str,
    dataset: str = config.DEFAULTS["dataset"],
    qdrant: str | None = None,
    collection: str = config.DEFAULTS["collection"],
    output: str | None = None,
    max_queries: int | None = None,
    bench_json: str | None = None,
    qdrant_queries: int = 300,
) -> dict:
    model_dir = Path(model_dir)
    out = Path(output) if output else model_dir
    embedder = Embedder(model_dir)
    ds = load_image_dataset(dataset)
    test = ds["test"] if max_queries is None else ds["test"].select(range(min(max_queries, len(ds["test"]))))
    db_images, q_images = ds["train"]["image"], test["image"]
    db, q = {"labels": np.asarray(ds["train"]["label"])}, {"labels": np.asarray(test["label"])}
    for side, images in ((db, db_images), (q, q_images)):
        side["floats"], side["codes"], side["probs"] = _embed_all(embedder, images)
        side["pixels"] = pixel_vectors(images, embedder.size)
        side["phash"] = _phash(images)
    accuracy = float((q["probs"].argmax(1) == q["labels"]).mean())
    methods = {m.report_key: score_method(m.name, q, db) for m in ranking.REGISTRY.values()}
    methods |= {b: score_method(b, q, db) for b in BASELINES}
    report = {
        "dataset": dataset,
        "model": str(model_dir),
        "queries": len(q["labels"]),
        "database": len(db["labels"]),
        "bits": embedder.n_bits,
        "views": embedder.views,
        "precision": embedder.precision,
        "accuracy": accuracy,
        "code_balance": code_balance(db["codes"]),
        "tie_rule": "hamming: distance, then cosine similarity, then database order",
        "methods": methods,
    }
    report["qdrant"] = _qdrant_report(collection, qdrant, embedder, q, db, dataset,
                                      min(qdrant_queries, len(q["labels"])), ds["train"])
    report["summary"] = _summary(report, model_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "retrieval.png")
    _append_to_card(model_dir / "README.md", report)
    if bench_json:
        Path(bench_json).parent.mkdir(parents=True, exist_ok=True)
        Path(bench_json).write_text(json.dumps(report["summary"], indent=2) + "\n")
    return report


def _qdrant_report(collection, qdrant, embedder, q, db, dataset, n_queries, train_split) -> dict:
    """The cross-check through the product's search path (qdrant_check), or why there is none."""
    try:
        store = open_store(collection, qdrant)
        try:
            store.require(embedder.meta)
            return qdrant_check(store, embedder, q, db, dataset, n_queries, train_split)
        finally:
            store.close()
    except StoreError as e:
        log.warning("no Qdrant cross-check: %s", e)
        return {"skipped": str(e)}


def _summary(report: dict, model_dir: Path) -> dict:
    """The figures a reader compares first: accuracy, and each metric's and baseline's mAP and precision."""
    methods = report["methods"]
    metrics_file = model_dir / "metrics.json"
    train_seconds = json.loads(metrics_file.read_text()).get("train_seconds") if metrics_file.is_file() else None
    pick = ("map_all", "map_1000", "p_at_1", "p_at_10", "p_at_100")
    return {
        "accuracy": report["accuracy"],
        "bits": report["bits"],
        **{m.report_key: {k: round(methods[m.report_key][k], 4) for k in pick} for m in ranking.REGISTRY.values()},
        "hamming_index_ties": {k: round(methods["hamming_index_ties"][k], 4) for k in pick},
        "baselines": {b: {k: round(methods[b][k], 4) for k in pick} for b in ("raw_pixels", "phash64")},
        "code_ones_min": round(report["code_balance"]["ones_min"], 4),
        "code_ones_max": round(report["code_balance"]["ones_max"], 4),
        "train_seconds": train_seconds,
        "views": report["views"],
        "queries": report["queries"],
        "database": report["database"],
    }


def table(report: dict) -> str:
    rows = ["| method | mAP@all | mAP@1000 | P@1 | P@10 | P@100 |", "|---|---|---|---|---|---|"]
    for name, m in report["methods"].items():
        rows.append(f"| {name} | {m['map_all']:.4f} | {m['map_1000']:.4f} | {m['p_at_1']:.4f} | "
                    f"{m['p_at_10']:.4f} | {m['p_at_100']:.4f} |")
    return "\n".join(rows)


def _append_to_card(card: Path, report: dict) -> None:
    if not card.is_file():
        return
    text = card.read_text().split("\n## Retrieval")[0].rstrip()
    text += (f"\n\n## Retrieval\n\n{report['queries']} test queries against {report['database']} train images, "
             f"relevant = same label. Test accuracy {report['accuracy']:.4f}.\n\n{table(report)}\n")
    card.write_text(text)
