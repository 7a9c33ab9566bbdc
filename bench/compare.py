"""Two models, the same pictures: is one better, or is the difference the sampling's? bench/robustness.py answers
for 100 queries, where one query moves a share by 0.01, less than its sampling error; this bench asks
both models the same questions on more queries and reports each figure's paired difference with its interval.

Queries: `--queries` Fashion-MNIST test images spread over the test split, none of them one of bench/robustness.py's
100; each under every transform of bench/robustness.py (the same generator, seeded alike), made once and embedded by
both models with the product's preparation. The database: the 70,000 Fashion-MNIST images (which hold each query's
original), embedded by each model; ranked by the NumPy reference of each metric (indexer.ranking, which the Qdrant
search plans reproduce: `make eval` checks it). Per transform: the original in the top 5 and label precision@10 for
each metric, and the predicted class (the classifier's top label, as the app shows it).

A difference counts when it is more than twice its standard error (the per-query differences' spread over √n):
"better" or "worse"; otherwise "no difference". Of some 150 figures a few may pass that bar by chance alone.

python bench/compare.py --baseline 1a2b59c:models/fmnist-small [--model models/fmnist-small] [--queries 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from bench.robustness import TRANSFORMS, bench_rows, encode  # noqa: E402
from indexer.ranking import METRICS, tops  # noqa: E402
from training import config  # noqa: E402
from training.images import open_image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH = 250  # queries ranked at once against the 70,000


def model_dir(spec: str, into: Path) -> Path:
    """A model dir: a path, or REV:PATH, the dir PATH as git revision REV holds it (written under `into`)."""
    if Path(spec).is_dir() or ":" not in spec:
        return Path(spec)
    rev, path = spec.split(":", 1)
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:{path}"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    if not names:
        raise SystemExit(f"{spec}: git revision {rev} has no files under {path}")
    out = into / rev
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        blob = subprocess.run(["git", "show", f"{rev}:{path}/{name}"], cwd=ROOT, check=True, capture_output=True)
        (out / name).write_bytes(blob.stdout)
    return out


def query_rows(n_test: int, n: int) -> list[int]:
    """`n` rows spread over a test split of `n_test`, none of them one of bench/robustness.py's queries."""
    taken = set(bench_rows(n_test))
    step = max(2, n_test // n)
    return [r + 1 if r in taken else r for r in range(step // 2, n_test, step)][:n]  # half a step after its rows


def queries(images: list[Image.Image], seed: int) -> dict[str, list[Image.Image]]:
    """Every transform of bench/robustness.py applied to `images`, seeded as that bench seeds it, as uploads."""
    out = {}
    for name, transform in TRANSFORMS.items():
        rng = np.random.default_rng(seed)
        out[name] = [open_image(encode(transform(im, rng))) for im in images]  # as the app decodes an upload
    return out


def outcomes(model: Path, database: list[Image.Image], db_labels: np.ndarray, originals: np.ndarray,
             asked: dict[str, list[Image.Image]]) -> dict[str, np.ndarray]:
    """Per figure, one value per query (1/0 for the top 5 and the class, a share for precision@10)."""
    from indexer.embedder import Embedder
    from indexer.evaluate import _embed_all

    embedder = Embedder(model)
    db_floats, db_codes, _ = _embed_all(embedder, database)
    labels = db_labels[originals]
    out = {}
    for name, pictures in asked.items():
        emb = embedder.embed(pictures, embedder.profile)
        out[f"predicted_class_accuracy[{name}]"] = (emb.probs.argmax(1) == labels).astype(float)
        for metric in METRICS:
            first = np.concatenate([tops(metric, emb.floats[a : a + BATCH], emb.codes[a : a + BATCH], db_floats,
                                         db_codes, 10) for a in range(0, len(pictures), BATCH)])
            out[f"original_in_top5[{name}, {metric}]"] = (first[:, :5] == originals[:, None]).any(1).astype(float)
            out[f"label_p_at_10[{name}, {metric}]"] = (db_labels[first] == labels[:, None]).mean(1)
        print(name, flush=True)
    return out


def verdict(difference: float, interval: float) -> str:
    if abs(difference) <= interval:
        return "no difference"
    return "better" if difference > 0 else "worse"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_flags(p, "model")
    p.add_argument("--baseline", required=True, help="the model to compare with: a model dir, or REV:PATH (git)")
    p.add_argument("--queries", type=int, default=1000, help="test images, spread evenly over the test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="compare", help="results go to bench/results/NAME.json")
    args = p.parse_args()

    from training.data import load_image_dataset

    ds = load_image_dataset("fashion_mnist")
    database = list(ds["train"]["image"]) + list(ds["test"]["image"])
    db_labels = np.array(list(ds["train"]["label"]) + list(ds["test"]["label"]))
    rows = query_rows(len(ds["test"]), args.queries)
    originals = np.array(rows) + len(ds["train"])
    asked = queries([database[i] for i in originals], args.seed)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = outcomes(model_dir(args.baseline, Path(tmp)), database, db_labels, originals, asked)
        new = outcomes(Path(args.model), database, db_labels, originals, asked)
    rec = Recorder(args.name)
    counts = {"better": 0, "worse": 0, "no difference": 0}
    lines = []
    for figure, b in base.items():
        d = new[figure] - b
        interval = 2 * float(d.std(ddof=1)) / np.sqrt(len(d))
        v = verdict(float(d.mean()), interval)
        counts[v] += 1
        rec.figure(figure, float(new[figure].mean()), "share", float(b.mean()), f"baseline {args.baseline}",
                   difference=round(float(d.mean()), 4), interval=round(interval, 4), verdict=v, queries=len(d))
        if v != "no difference":
            lines.append(f"| {figure} | {b.mean():.3f} | {new[figure].mean():.3f} | {d.mean():+.3f} ± {interval:.3f} |")
    for v, n in counts.items():
        rec.figure(f"figures[{v}]", n, "figures", model=args.model, compared_with=args.baseline)
    rec.figure("seconds", time.perf_counter() - started, "s", better="lower")
    print("| figure | baseline | model | difference |\n|---|---|---|---|\n" + "\n".join(lines))
    print(counts)


if __name__ == "__main__":
    main()
